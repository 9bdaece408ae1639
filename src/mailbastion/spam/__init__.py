"""The built-in spam and phishing classifier: features, model, model store, training, rules, report learning,
rate limits and greylisting. Checks that use these live in `policy/checks/`."""

from mailbastion.spam.features import MessageFeatures, extract, extract_bytes
from mailbastion.spam.model import SpamModel
from mailbastion.spam.store import ModelStore, shipped_model_path
from mailbastion.spam.tokens import tokens

__all__ = ["MessageFeatures", "ModelStore", "SpamModel", "extract", "extract_bytes", "shipped_model_path", "tokens"]
