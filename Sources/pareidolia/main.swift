import ArgumentParser
import Foundation
import Tensors

// PAREIDOLIA_ISA caps the kernels (and OpenBLAS's family); a value it does not know stops here.
if let problem = KernelISA.environmentProblem {
    FileHandle.standardError.write(Data("error: \(problem)\n".utf8))
    exit(2)
}
// Open OpenBLAS first, before anything else could: its kernel family is fixed when it loads.
// A failure is reported by the commands that need BLAS, not here (`--help` must always work).
try? BLAS.load()

Pareidolia.main()
