"""Model runtime (loading, prompt/FIM formats) and LoRA fine-tuning on the workspace dataset."""
