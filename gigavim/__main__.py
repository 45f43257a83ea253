"""``python -m gigavim``: the same command line as the ``gigavim`` script."""

from gigavim.cli import run

if __name__ == "__main__":
    run()
