"""Bench only, never the product: issue 9's "spine" profile, the message path with no content check.

`bench/message_path.py --profile spine` puts this folder first on the server's PYTHONPATH. The product
cannot run without anti-virus (measure 1: `antivirus.enabled = false` is refused at start), so the
profile cannot be a setting: here the anti-virus and encrypted-mail features are left out of the
gateway's pipeline when `serve` loads its features. Everything else is what `path` runs: the SMTP
engine, relay, recipient, HELO and header checks, the spool with its fsyncs, the queue manager and the
MDA writing every copy into a Maildir. Compare with Postfix's config b, which has no content check.

Being first on the path, this file hides the interpreter's own `sitecustomize` (on Debian, a hook for
apport's crash reports) from the bench's server; nothing else sees it.
"""

import os

if os.environ.get("MAILBASTION_BENCH_SPINE") == "1":
    import mailbastion.apps.features as _features
    import mailbastion.apps.pipeline as _pipeline

    _CONTENT = ("antivirus", "encryption")
    _load = _features.load_features

    def _without_content(services, names=_features.FEATURE_NAMES):  # type: ignore[no-untyped-def]
        return _load(services, tuple(n for n in names if n not in _CONTENT))

    _features.load_features = _without_content
    _pipeline.load_features = _without_content
