import Checkpoints
import Testing
import TestSupport
import Tensors

@Suite("Resampling against PyTorch F.interpolate")
struct ResizeTests {
    let file: SafeTensorsFile
    init() throws { file = try SafeTensorsFile(path: Fixtures.path("resize.safetensors")) }

    @Test("bilinear, align_corners=False", arguments: ["bilinear_up", "bilinear_odd", "bilinear_down"])
    func bilinear(_ name: String) throws {
        let y = try file.tensor("\(name).y")
        let got = try resizeBilinear(file.tensor("\(name).x"), height: y.shape[2], width: y.shape[3])
        expectClose(got, y, relTol: 1e-6, name)
    }

    @Test("bilinear, antialias=True (shrinking a latent for CLIP, and upscaling)", arguments: ["antialias_down", "antialias_wide", "antialias_up"])
    func antialiased(_ name: String) throws {
        let y = try file.tensor("\(name).y")
        let got = try resizeBilinearAntialiased(file.tensor("\(name).x"), height: y.shape[2], width: y.shape[3])
        expectClose(got, y, relTol: 1e-6, name)
    }

    @Test("nearest to an explicit size")
    func nearest() throws {
        let y = try file.tensor("nearest_size.y")
        let got = try upsampleNearest(file.tensor("nearest_size.x"), height: 17, width: 10)
        expectClose(got, y, relTol: 0, "nearest_size")
    }
}
