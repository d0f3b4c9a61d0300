"""Files that are secrets by nature (``.env``, private keys, credential stores): left out whole."""

from __future__ import annotations

import fnmatch
import re

SECRET_FILE_NAMES = frozenset(
    {".npmrc", ".pypirc", ".netrc", "_netrc", ".git-credentials", ".pgpass", ".htpasswd",
     ".dockercfg", "credentials", "credentials.json", "credentials.yml", "credentials.yaml",
     "kubeconfig", "id_rsa", "id_dsa", "id_ecdsa", "id_ed25519", "secrets.yml", "secrets.yaml",
     "secrets.json", "secrets.toml", ".secrets", "client_secret.json", "service-account.json",
     "terraform.tfstate", "terraform.tfstate.backup", ".boto", ".s3cfg"}
)  # fmt: skip
SECRET_FILE_GLOBS = (
    ".env", ".env.*", "*.env", ".envrc", "*.pem", "*.key", "*.p12", "*.pfx", "*.jks",
    "*.keystore", "*.ppk", "*.kubeconfig", "kubeconfig.*", "*.tfvars", "*.tfstate",
    "id_rsa*", "id_dsa*", "id_ecdsa*", "id_ed25519*", "*.keytab", "*credentials*.json",
    "service-account*.json", "*.gpg", "*.asc", "*.ovpn",
)  # fmt: skip
_SECRET_GLOB_RE = re.compile("|".join(fnmatch.translate(g) for g in SECRET_FILE_GLOBS))
SECRET_FILE_PATHS = (".kube/config", ".docker/config.json", ".aws/credentials", ".aws/config")


def secret_file(path: str) -> bool:
    """True for files that are secrets by nature and are left out whole."""
    name = path.rsplit("/", 1)[-1]
    lower = name.lower()
    if lower in SECRET_FILE_NAMES:
        return True
    if any(path == p or path.endswith("/" + p) for p in SECRET_FILE_PATHS):
        return True
    return _SECRET_GLOB_RE.match(lower) is not None
