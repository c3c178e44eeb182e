import Checkpoints
import Foundation
import Tensors
import TestSupport
import Testing
@testable import Models

/// Preprocessing against transformers' CLIPImageProcessor (Pillow path) on synthetic images.
@Suite("CLIP image preprocessing")
struct CLIPImageProcessorTests {
    /// One 8-bit level in normalised units, for the channel with the smallest std.
    static let level: Float = 1 / 255 / 0.26130258

    @Test(arguments: [("landscape", 224), ("square", 64), ("portrait", 64)])
    func matchesTransformers(_ name: String, _ size: Int) throws {
        let file = try SafeTensorsFile(path: Fixtures.path("tiny-clip/preprocessing.safetensors"))
        guard let entry = file.tensors["\(name)_rgb"], entry.dtype == .u8, entry.shape.count == 3 else {
            Issue.record("\(name)_rgb: expected uint8 [H, W, 3]"); return
        }
        let raw = try file.file.bytes(at: entry.byteOffset, count: entry.byteCount, what: entry.name)
        let rgb = [UInt8](raw)
        let expected = try file.tensor("\(name)_pixels")  // [1, 3, S, S]
        let got = try CLIPImageProcessor(size: size)(rgb: rgb, width: entry.shape[1], height: entry.shape[0])
        #expect(got.shape == expected.shape)
        var worst: Float = 0
        for i in 0..<got.count { worst = max(worst, abs(got.pointer[i] - expected.pointer[i])) }
        // Within one 8-bit level (the reference is stored in fp16: ≤ 0.002 of rounding on top).
        // The portrait is resampled vertical pass first (Pillow 13's order), the others horizontal first.
        #expect(worst <= Self.level + 0.002, "\(name): max |diff| \(worst) vs one level \(Self.level)")
    }

    /// Pass orders Pillow 13.0 was seen to take (both orders computed, the one matching Pillow's
    /// bytes recorded), at the boundary of the rule: the height shrinks by more than twice the width.
    @Test(arguments: [((97, 411, 64, 271), true), ((411, 97, 271, 64), false), ((100, 200, 50, 99), true),
                      ((100, 100, 50, 49), false), ((60, 60, 36, 10), true), ((60, 60, 35, 10), false),
                      ((100, 100, 150, 50), true), ((100, 100, 120, 110), false), ((128, 128, 64, 64), false)])
    func pillowPassOrder(_ sizes: (Int, Int, Int, Int), _ vertical: Bool) {
        #expect(CLIPImageProcessor.verticalFirst(width: sizes.0, height: sizes.1, toWidth: sizes.2, toHeight: sizes.3) == vertical)
    }

    @Test func badInputIsAnError() {
        #expect(throws: TensorError.self) { try CLIPImageProcessor()(rgb: [1, 2, 3], width: 2, height: 2) }
    }
}
