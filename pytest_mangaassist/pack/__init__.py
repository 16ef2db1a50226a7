"""The gate pack: a test module shipped with the plugin, collected by --mangaassist-pack (docs/gates.md)."""
