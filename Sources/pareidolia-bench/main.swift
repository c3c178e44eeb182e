import ArgumentParser
import Foundation
import Tensors

// PAREIDOLIA_ISA caps the kernels (and OpenBLAS's family); a value it does not know stops here.
if let problem = KernelISA.environmentProblem {
    FileHandle.standardError.write(Data("error: \(problem)\n".utf8))
    exit(2)
}
// OpenBLAS picks its kernels when it loads: load it before anything else.
try? BLAS.load()

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pareidolia-bench",
        abstract: "Benchmarks: figures and ratios against peers measured in the same run.",
        subcommands: [KernelsBench.self, ModelsBench.self, GenerateBench.self, ProbesBench.self, ReportBench.self, ClipBench.self, BF16Bench.self, WinogradBench.self, RemedyBench.self, StreamBench.self],
        defaultSubcommand: KernelsBench.self
    )
}

Bench.main()
