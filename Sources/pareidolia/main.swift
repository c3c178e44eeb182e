import ArgumentParser
import Tensors

// Open OpenBLAS first, before anything else could: its kernel family is fixed when it loads.
// A failure is reported by the commands that need BLAS, not here (`--help` must always work).
try? BLAS.load()

Pareidolia.main()
