"""The ``splitgate`` command: one entry point that starts either plane or the demo."""
