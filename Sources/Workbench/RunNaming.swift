import Foundation
import Probes

/// Where each prompt × seed's image and trace go, named so a person can tell them apart:
///
/// | runs                 | image                        | trace                    |
/// |----------------------|------------------------------|--------------------------|
/// | 1 prompt, 1 seed     | `out.png`                    | `DIR`                    |
/// | 1 prompt, n seeds    | `out-SEED.png`               | `DIR/SEED`               |
/// | p prompts, 1 seed    | `out-p1-a-red-circle.png`    | `DIR/p1-a-red-circle`    |
/// | p prompts, n seeds   | `out-p1-a-red-circle-SEED.png` | `DIR/p1-a-red-circle/SEED` |
///
/// Prompts that tweak one another share their first words, so each is named by what it adds
/// ("a red circle" → `p1-a-red-circle`, "a red circle and a blue square" → `p2-and-a-blue-square`).
/// With more than one run, `DIR/runs.json` lists them all (`RunIndex`).
public enum RunNaming {
    /// Words of a prompt kept in its folder name.
    static let slugLength = 40

    public static func items(prompts: [String], seeds: [UInt64], output: String, trace: String?) -> [GenerationRun.Item] {
        let manyPrompts = prompts.count > 1, manySeeds = seeds.count > 1
        var items: [GenerationRun.Item] = []
        let names = slugs(prompts)
        for (p, prompt) in prompts.enumerated() {
            let promptPart = manyPrompts ? "p\(p + 1)-\(names[p])" : nil
            for seed in seeds {
                let suffix = [promptPart, manySeeds ? "\(seed)" : nil].compactMap { $0 }.joined(separator: "-")
                let image = suffix.isEmpty ? output : suffixed(output, "-" + suffix)
                // Kept as given (relative stays relative), so printed paths read as the user wrote them.
                let folder = trace.map { root in
                    [promptPart, manySeeds ? "\(seed)" : nil].compactMap { $0 }
                        .reduce(root.hasSuffix("/") && root.count > 1 ? String(root.dropLast()) : root) { $0 + "/" + $1 }
                }
                items.append(GenerationRun.Item(promptIndex: p, prompt: prompt, seed: seed, image: image, trace: folder))
            }
        }
        return items
    }

    /// The index of `items` (traced ones) for the folder `root`, with paths relative to it.
    public static func index(of items: [GenerationRun.Item], root: String) -> RunIndex {
        let base = URL(fileURLWithPath: root).standardizedFileURL.path
        return RunIndex(runs: items.compactMap { item in
            guard let trace = item.trace else { return nil }
            return RunIndex.Entry(prompt: item.prompt, promptIndex: item.promptIndex, seed: item.seed,
                                  trace: relative(trace, to: base), image: relative(item.image, to: base))
        })
    }

    /// Each prompt's name: the words after those every prompt starts with, or (when that leaves
    /// nothing, as for the prompt the others extend) the prompt from its start.
    public static func slugs(_ prompts: [String]) -> [String] {
        let words = prompts.map(Self.words)
        var common = 0
        if let first = words.first {
            while common < first.count, words.allSatisfy({ common < $0.count && $0[common] == first[common] }) { common += 1 }
        }
        return words.map { w in
            let rest = prompts.count > 1 && common < w.count ? Array(w[common...]) : w
            return slug(words: rest)
        }
    }

    /// A prompt as a file-name part: lower-case ASCII words joined by '-', at most `slugLength`
    /// characters, cut at a word; "prompt" when nothing is left (a prompt of emoji or CJK).
    public static func slug(_ prompt: String) -> String { slug(words: words(prompt)) }

    /// A1111 syntax (weights, brackets, embedding triggers' punctuation) is not part of a name.
    static func words(_ prompt: String) -> [String] {
        prompt.lowercased()
            .replacingOccurrences(of: #":[0-9.]+"#, with: " ", options: .regularExpression)
            .split { !($0.isASCII && ($0.isLetter || $0.isNumber)) }.map(String.init)
    }

    static func slug(words: [String]) -> String {
        var out = ""
        for w in words {
            let next = out.isEmpty ? w : out + "-" + w
            if next.count > slugLength { break }
            out = next
        }
        if out.isEmpty, let first = words.first { out = String(first.prefix(slugLength)) }
        return out.isEmpty ? "prompt" : out
    }

    /// `out.png` → `out-SUFFIX.png`.
    public static func suffixed(_ path: String, _ suffix: String) -> String {
        let url = URL(fileURLWithPath: path)
        let ext = url.pathExtension
        let stem = path.hasSuffix("." + ext) && !ext.isEmpty ? String(path.dropLast(ext.count + 1)) : path
        return stem + suffix + (ext.isEmpty ? "" : "." + ext)
    }

    /// `path` relative to the folder `base` ("../x.png" when beside it).
    static func relative(_ path: String, to base: String) -> String {
        let target = URL(fileURLWithPath: path).standardizedFileURL.pathComponents
        let from = URL(fileURLWithPath: base).standardizedFileURL.pathComponents
        var common = 0
        while common < min(target.count, from.count), target[common] == from[common] { common += 1 }
        let ups = Array(repeating: "..", count: from.count - common)
        return (ups + target[common...]).joined(separator: "/")
    }
}
