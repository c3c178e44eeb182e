import Analysis
import Foundation
import Probes
import Reports
import Workbench

// A trace folder (docs/TRACE.md) copied from another machine, as report, merge and remedy read it.

/// Between the files of a trace in one fuzz input (Tests/Fuzz/make_seeds.py writes the seeds so).
let traceMarker = Array("\n@@pareidolia-fuzz-file@@\n".utf8)
let traceFiles = ["run.json", "latents.safetensors", "attention.safetensors", "image.png", "runs.json"]

let folderTargets: [FuzzTarget] = [
    FuzzTarget(name: "trace", about: "a trace folder's files as report, merge and remedy read them") { bytes in
        let parts = splitParts(bytes, marker: traceMarker)
        removeScratch("trace")
        for (name, part) in zip(traceFiles, parts) { writeScratch(part, name, folder: "trace") }
        let folder = "\(scratch)/trace"
        _ = try? RunIndex.read(folder: folder)
        _ = try? RecordedRun(folder: folder)
        if let maps = try? TraceWordMaps(directory: folder), maps.words.count >= 2 {
            // merge: the first two words; the model named in run.json is never loaded here.
            _ = try? PairStudy(folders: [folder], a: maps.words[0].label, b: maps.words[1].label, model: "\(scratch)/no-model")
        }
        let trace = try ReportTrace(directory: folder)
        _ = trace.conditioning(at: 0)
        for e in [0, trace.evaluations - 1] { _ = try? trace.x0(at: e); _ = try? trace.latent(at: e) }
    },
]
