"""``python -m edge --model M.tflite --source SOURCE``: live segmentation. See ``edge.cli``."""
import sys

from edge.cli import main

if __name__ == "__main__":
    sys.exit(main())
