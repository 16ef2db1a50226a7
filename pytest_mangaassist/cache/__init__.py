"""The one owner of the on-disk cache: untrusted entries, verified before use."""
