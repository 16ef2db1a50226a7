"""Settings: the command-line and ini options, validated once at start-up."""
