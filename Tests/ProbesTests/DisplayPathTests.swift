import Foundation
import Probes
import Testing

@Suite("Paths as a person types them")
struct DisplayPathTests {
    @Test func relativeUnderTheWorkingDirectoryOnly() {
        #expect(DisplayPath.of("/work/repo/Reports/demo/remedy", workingDirectory: "/work/repo") == "Reports/demo/remedy")
        #expect(DisplayPath.of("/work/repo/./Reports/../Reports/x", workingDirectory: "/work/repo/") == "Reports/x")
        #expect(DisplayPath.of("/work/repo", workingDirectory: "/work/repo") == ".")
        #expect(DisplayPath.of("/work/repository/x", workingDirectory: "/work/repo") == "/work/repository/x")
        #expect(DisplayPath.of("/tmp/out", workingDirectory: "/work/repo") == "/tmp/out")
    }
}
