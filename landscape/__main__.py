"""``python -m landscape`` runs the CLI (torchrun uses this entry point)."""

from .cli import main

if __name__ == "__main__":
    main()
