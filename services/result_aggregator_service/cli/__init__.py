"""`ras`: the operators' command line (an entry point). One typer app per area, joined in `main.py`."""
