import sys
from pathlib import Path

# Benchmarks import their shared workload modules from this folder.
sys.path.insert(0, str(Path(__file__).resolve().parent))
