"""The RSCT website: every module except the fixed top-level app.py and config.py, one room per job."""
