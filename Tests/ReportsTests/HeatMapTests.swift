import Analysis
import Checkpoints
import Foundation
import Imaging
@testable import Reports
import Tensors
import Testing
import TestSupport

/// DAAM heat maps, shares and colour maps against Tests/Fixtures/report/heatmaps.safetensors
/// (Tools/reference/make_report_fixtures.py: numpy in float64, its bicubic checked against torch's).
@Suite("DAAM heat maps")
struct HeatMapTests {
    static let fixture = Fixtures.path("report/heatmaps.safetensors")

    /// The fixture's synthetic trace written as `generate --trace` would (run.json + attention.safetensors).
    static func fixtureTrace() throws -> (TraceWordMaps, SafeTensorsFile) {
        let file = try SafeTensorsFile(path: fixture)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("pareidolia-heat-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let tokens = try JSONSerialization.jsonObject(with: Data((file.metadata["tokens"] ?? "").utf8))
        try JSONSerialization.data(withJSONObject: ["tokens": tokens]).write(to: dir.appendingPathComponent("run.json"))
        try SafeTensorsWriter.write(["cross": file.tensor("cross")], to: dir.appendingPathComponent("attention.safetensors").path)
        return (try TraceWordMaps(directory: dir.path), file)
    }

    static func maxDiff(_ a: [Float], _ b: UnsafeBufferPointer<Float>) -> Float {
        guard a.count == b.count else { return .infinity }
        return zip(a, b).reduce(0) { max($0, abs($1.0 - $1.1)) }
    }

    /// The fixture tensor's slice `index` of the leading axis.
    static func slice(_ t: Tensor, _ index: Int) -> UnsafeBufferPointer<Float> {
        let n = t.count / t.shape[0]
        return UnsafeBufferPointer(start: t.pointer + index * n, count: n)
    }

    @Test func matchesNumpyFixture() throws {
        let (maps, file) = try Self.fixtureTrace()
        #expect(maps.words.map(\.label) == ["a", "witch", "cat"])
        #expect(maps.words.map(\.positions) == [[1], [2, 3], [4]])
        for (h, w) in [(64, 64), (48, 80)] {
            for (norm, key) in [(HeatMapNormalisation.perWord, "perword"), (.global, "global")] {
                let expected = try file.tensor("\(key).\(h)x\(w)")  // [words, H, W]
                let heat = HeatMaps.wordHeatMaps(maps, imageWidth: w, imageHeight: h, normalisation: norm)
                #expect(heat.count == 3 && heat.allSatisfy { $0.width == w && $0.height == h })
                let diff = heat.indices.map { Self.maxDiff(heat[$0].values, Self.slice(expected, $0)) }.max() ?? .infinity
                print("heat map \(key) \(h)x\(w): max |swift − numpy| = \(diff)")
                #expect(diff <= 1e-4, "\(key) \(h)x\(w)")
                #expect(heat.allSatisfy { $0.values.allSatisfy { (0...1).contains($0) } })
            }
        }
        // Words share one range under .global: the strongest word reaches 1, the others may not.
        let global = HeatMaps.wordHeatMaps(maps, imageWidth: 64, imageHeight: 64, normalisation: .global)
        #expect(global.map { $0.values.max() ?? 0 }.max() == 1)
        #expect((global[0].values.max() ?? 1) < 0.5)  // "a" is flat and weak
    }

    @Test func windowAndStripMatchFixture() throws {
        let (maps, file) = try Self.fixtureTrace()
        let window = HeatMaps.wordHeatMaps(maps, imageWidth: 10, imageHeight: 12, evaluations: 1..<3, normalisation: .perWord)
        let expected = try file.tensor("window.perword.12x10")  // [words, 12, 10]
        let diff = window.indices.map { Self.maxDiff(window[$0].values, Self.slice(expected, $0)) }.max() ?? .infinity
        print("window 1..<3 12x10: max |swift − numpy| = \(diff)")
        #expect(diff <= 1e-4)
        // A window past the recorded evaluations is clipped to them.
        let clipped = HeatMaps.wordHeatMaps(maps, imageWidth: 10, imageHeight: 12, evaluations: 1..<40, normalisation: .perWord)
        #expect(clipped.map(\.values) == window.map(\.values))

        let strip = try file.tensor("strip.4x6")  // [words, E, 4, 6]
        var worst: Float = 0
        for word in 0..<3 {
            let frames = HeatMaps.evaluationHeatMaps(maps, word: word, width: 6, height: 4)
            #expect(frames.count == 3)
            for (e, f) in frames.enumerated() {
                let n = 4 * 6
                worst = max(worst, Self.maxDiff(f.values, UnsafeBufferPointer(start: strip.pointer + (word * 3 + e) * n, count: n)))
            }
        }
        print("strip 4x6: max |swift − numpy| = \(worst)")
        #expect(worst <= 1e-4)
        #expect(HeatMaps.evaluationHeatMaps(maps, word: 7, width: 6, height: 4).isEmpty)
    }

    @Test func sharesSumToOne() throws {
        let (maps, file) = try Self.fixtureTrace()
        let shares = HeatMaps.attentionShares(maps)  // [words][E]
        let expected = try file.tensor("shares")  // [E, words]
        #expect(shares.count == 3 && shares.allSatisfy { $0.count == 3 })
        for e in 0..<3 {
            let total = shares.reduce(0) { $0 + $1[e] }
            #expect(abs(total - 1) < 1e-5, "evaluation \(e): \(total)")
            for w in 0..<3 { #expect(abs(shares[w][e] - Double(expected.pointer[e * 3 + w])) < 1e-6) }
        }
        // All-zero maps have no share to give.
        #expect(HeatMaps.attentionShares([[[0, 0]], [[0, 0]]]) == [[0], [0]])
    }

    /// A 1 at latent pixel (row 2, column 5) of an 8 × 8 map peaks where that pixel's centre lands:
    /// source coordinate 2 (5) is output (2 + 0.5) · scale − 0.5, between two output pixels.
    @Test func hotSpotPeaksInPlace() throws {
        var plane = [Float](repeating: 0, count: 64)  // [8, 8]
        plane[2 * 8 + 5] = 1
        for (h, w, rows, cols) in [(64, 64, 19...20, 43...44), (48, 80, 14...15, 54...55)] {
            let heat = HeatMaps.wordHeatMaps(words: [("spot", [1])], maps: [[plane]], latentWidth: 8, latentHeight: 8,
                                             imageWidth: w, imageHeight: h, normalisation: .perWord)[0]
            let peak = heat.values.indices.max { heat.values[$0] < heat.values[$1] } ?? -1
            #expect(rows.contains(peak / w) && cols.contains(peak % w), "\(h)x\(w): peak at \(peak / w), \(peak % w)")
            #expect(heat.values[peak] == 1 && heat.values.min() == 0)
            // The raw bicubic undershoots beside the spot; the heat map is clamped there.
            let raw = try bicubicResize(plane, width: 8, height: 8, toWidth: w, toHeight: h)
            #expect((raw.min() ?? 0) < 0)
        }
    }

    @Test func bicubicBasics() throws {
        let plane: [Float] = (0..<15).map { Float($0 * $0) / 7 }  // [3, 5]
        #expect(try bicubicResize(plane, width: 5, height: 3, toWidth: 5, toHeight: 3) == plane)  // same size: identity
        let flat = try bicubicResize([Float](repeating: 0.25, count: 12), width: 4, height: 3, toWidth: 9, toHeight: 2)
        #expect(flat.count == 18 && flat.allSatisfy { abs($0 - 0.25) < 1e-7 })  // weights sum to 1, borders clamp
        #expect(throws: BicubicResizeError.self) { try bicubicResize(plane, width: 4, height: 3, toWidth: 8, toHeight: 6) }
        #expect(throws: BicubicResizeError.self) { try bicubicResize(plane, width: 5, height: 3, toWidth: 0, toHeight: 6) }
    }

    @Test func constantMapsAreZero() {
        let words: [(label: String, positions: [Int])] = [("flat", [1]), ("none", [2])]
        let maps: [[[Float]]] = [[[Float](repeating: 0.3, count: 16)], [[Float](repeating: 0, count: 16)]]
        let perWord = HeatMaps.wordHeatMaps(words: words, maps: maps, latentWidth: 4, latentHeight: 4,
                                            imageWidth: 8, imageHeight: 8, normalisation: .perWord)
        #expect(perWord.allSatisfy { $0.values.count == 64 && $0.values.allSatisfy { $0 == 0 } })
        let global = HeatMaps.wordHeatMaps(words: words, maps: maps, latentWidth: 4, latentHeight: 4,
                                           imageWidth: 8, imageHeight: 8, normalisation: .global)
        #expect(global[0].values.allSatisfy { abs($0 - 1) < 1e-6 } && global[1].values.allSatisfy { $0 == 0 })
    }

    @Test func colourMaps() throws {
        #expect(ColorMap.viridis(0) == (68, 1, 84) && ColorMap.viridis(1) == (253, 231, 36))
        #expect(ColorMap.jet(0) == (0, 0, 127) && ColorMap.jet(1) == (127, 0, 0))
        #expect(ColorMap.jet(-3) == ColorMap.jet(0) && ColorMap.jet(7) == ColorMap.jet(1) && ColorMap.jet(.nan) == ColorMap.jet(0))
        // Every entry as matplotlib's cmap(x, bytes=True).
        let file = try SafeTensorsFile(path: Self.fixture)
        for map in [ColorMap.jet, .viridis] {
            let expected = try file.tensor("\(map.name)_bytes")  // [256, 3]
            #expect(map.table.count == 256)
            var mismatches = 0
            for i in 0..<256 {
                let (r, g, b) = map((Float(i) + 0.5) / 256)
                if [r, g, b] != (0..<3).map({ UInt8(expected.pointer[3 * i + $0]) }) { mismatches += 1 }
            }
            #expect(mismatches == 0, "\(map.name)")
        }
        let img = ColorMap.jet.image(values: [0, 1], width: 2, height: 1)
        #expect(img.pixels == [0, 0, 127, 127, 0, 0])
    }

    @Test func blend() {
        let image = RGBImage(width: 3, height: 1, pixels: [10, 200, 30, 40, 50, 60, 70, 80, 90])
        let heat = WordHeatMap(label: "x", positions: [1], width: 3, height: 1, values: [0, 1, 0.5])
        let out = HeatMaps.blend(image: image, heat: heat, colourMap: .jet)
        #expect(Array(out.pixels[0..<3]) == [10, 200, 30])  // no attention: the image's own colour
        #expect(Array(out.pixels[3..<6]) == [127, 0, 0])  // full attention: jet(1)
        let (r, g, b) = ColorMap.jet(0.5)
        let mixed: [Float] = [(70 + Float(r)) / 2, (80 + Float(g)) / 2, (90 + Float(b)) / 2]
        let expectedMix: [UInt8] = mixed.map { UInt8($0.rounded()) }
        #expect(Array(out.pixels[6..<9]) == expectedMix)
        // Half strength keeps half of the image at full attention.
        let half = HeatMaps.blend(image: image, heat: heat, colourMap: .jet, strength: 0.5)
        #expect(Array(half.pixels[3..<6]) == [84, 25, 30])
        #expect(HeatMaps.blend(image: image, heat: [], width: 0, height: 0).pixels == image.pixels)
        // A map of another size is resized to the image.
        let small = HeatMaps.blend(image: image, heat: [0], width: 1, height: 1)
        #expect(small.pixels == image.pixels)
    }
}
