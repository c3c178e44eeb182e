import Analysis
import Foundation
import Imaging
import Reports
import Testing
import TestSupport

/// The merge page puts each seed's final image, with that seed's verdict, beside the verdict in
/// words: the verdict reads attention, the picture shows whether one figure was drawn.
@Suite("Merge page")
struct MergePageTests {
    @Test func finalImagesWithEachSeedsVerdict() throws {
        let together = try SyntheticMergeTrace.write(merging: true), apart = try SyntheticMergeTrace.write(merging: false)
        defer { for d in [together, apart] { try? FileManager.default.removeItem(atPath: d) } }
        let study = try PairStudy(folders: [together, apart], a: "alex", b: "cora")
        let red = RGBImage(width: 8, height: 8, pixels: [UInt8]((0..<64).flatMap { _ in [UInt8(220), 30, 30] }))
        let plain = MergePage(study: study, seeds: ["11", "22"])
        let page = MergePage(study: study, seeds: ["11", "22"], images: [red, nil])
        // Two images side by side at most 170 px wide, a heading and three caption lines.
        #expect(page.height - plain.height == 20 + 170 + 58)
        let pixels = try page.render()
        func rgb(_ x: Double, _ y: Double) -> [UInt8] {
            let i = (Int(y) * pixels.width + Int(x)) * 3
            return Array(pixels.pixels[i..<i + 3])
        }
        // The first image's centre is the red picture; the second run left none: an empty panel.
        // One seed merges, so the verdict box (100 high) holds the remedy's command too.
        let imageTop = page.margin + 100 + 44 + 20, side = 170.0
        #expect(rgb(page.margin + side / 2, imageTop + side / 2) == [220, 30, 30])
        #expect(rgb(page.margin + side + 10 + side / 2, imageTop + side / 2) == [0xF6, 0xF8, 0xFA])
    }
}
