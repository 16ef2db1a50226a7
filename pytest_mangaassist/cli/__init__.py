"""The command line: python -m pytest_mangaassist (the workflows that are not a pytest run)."""
