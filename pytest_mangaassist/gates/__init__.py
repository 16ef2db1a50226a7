"""The assert_* gates, one module per family; import them from pytest_mangaassist."""
