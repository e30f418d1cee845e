"""The roboflow command line."""

import os

# NumPy's OpenBLAS starts a thread per CPU that spins for about a tenth of a CPU-second once numpy
# is imported (and after each call it threads); the commands do no large linear algebra, and their
# CPUs are the video encoders'. An explicit setting is kept.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
