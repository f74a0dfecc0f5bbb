"""`python -m makeflow` runs the command line."""

from makeflow.ui.cli import main

if __name__ == "__main__":
    main()
