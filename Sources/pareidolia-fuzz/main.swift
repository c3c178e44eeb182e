import Foundation
import Models

// libFuzzer's driver reads its flags and corpora from the command line and feeds every input
// to fuzzOneInput. It is called from here rather than through libFuzzer's own main because
// SwiftPM links an executable's entry point under the module's name.

@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(_ argc: UnsafeMutablePointer<Int32>,
                         _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
                         _ test: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32) -> Int32

// The bundled CLIP vocabulary is read once per process, on first use (~0.35 s under the
// sanitizer). For the targets that tokenize it is read here, before the driver's clock starts,
// so the input that first needs it is not timed with it: in -fork mode every job is a new
// process, and on a loaded machine that input passed the 1 s limit (three false timeouts of
// bind in a 25-minute run).
if selectedTarget.usesVocabulary { _ = CLIPVocabulary.bundled }

var argc = CommandLine.argc
var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
exit(LLVMFuzzerRunDriver(&argc, &argv, fuzzOneInput))
