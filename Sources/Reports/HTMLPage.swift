import Foundation

/// The report's index.html: one offline page, relative links only, readable on a laptop and a
/// phone. Two small scripts enhance it — a step slider over the denoising frames and a word
/// picker over the heat maps; with scripts off, the animation (a GIF) and every heat map still
/// show, because both controls start hidden and the script only reveals them.
struct HTMLPage {
    var title: String
    /// CSS rules a page adds to the common ones.
    var style = ""
    private var body = ""

    init(title: String) { self.title = title }

    static func escape(_ s: String) -> String {
        var out = ""
        for ch in s {
            switch ch {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.append(ch)
            }
        }
        return out
    }

    /// A path as an href: each component percent-encoded (file names carry prompt words).
    static func href(_ path: String) -> String {
        path.split(separator: "/", omittingEmptySubsequences: false).map {
            String($0).addingPercentEncoding(withAllowedCharacters: .urlPathAllowed.subtracting(CharacterSet(charactersIn: "/?#"))) ?? String($0)
        }.joined(separator: "/")
    }

    mutating func section(_ id: String, _ heading: String, note: String? = nil, _ content: String) {
        body += "<section id=\"\(id)\"><h2>\(Self.escape(heading))</h2>"
        if let note { body += "<p class=\"note\">\(Self.escape(note))</p>" }
        body += content + "</section>\n"
    }

    static func figure(_ src: String, alt: String, caption: String? = nil, id: String? = nil, cls: String? = nil) -> String {
        var s = "<figure\(cls.map { " class=\"\($0)\"" } ?? "")><img src=\"\(href(src))\" alt=\"\(escape(alt))\" loading=\"lazy\"\(id.map { " id=\"\($0)\"" } ?? "")>"
        if let caption { s += "<figcaption>\(escape(caption))</figcaption>" }
        return s + "</figure>"
    }

    /// The step scrubber: frames[i] are image paths; labels[i] their captions.
    static func scrubber(frames: [String], labels: [String], gif: String) -> String {
        let list = frames.map { "\"\(href($0))\"" }.joined(separator: ",")
        let names = labels.map { "\"\(escape($0).replacingOccurrences(of: "\\", with: "\\\\"))\"" }.joined(separator: ",")
        return """
        <div class="scrub" id="scrub" hidden>
          <img id="scrub-frame" src="\(href(frames.last ?? gif))" alt="denoising frame">
          <div class="controls"><button type="button" id="scrub-play" aria-label="play">▶</button>
          <input type="range" id="scrub-step" min="0" max="\(max(0, frames.count - 1))" value="\(max(0, frames.count - 1))" aria-label="evaluation">
          <output id="scrub-label">\(escape(labels.last ?? ""))</output></div>
        </div>
        <figure id="scrub-gif"><img src="\(href(gif))" alt="denoising animation"><figcaption>The animation (GIF), every evaluation in turn.</figcaption></figure>
        <script>
        (function () {
          var frames = [\(list)], labels = [\(names)];
          var box = document.getElementById("scrub"), img = document.getElementById("scrub-frame");
          var range = document.getElementById("scrub-step"), out = document.getElementById("scrub-label");
          var play = document.getElementById("scrub-play"), timer = null;
          box.hidden = false; document.getElementById("scrub-gif").hidden = true;
          function show(i) { img.src = frames[i]; out.textContent = labels[i]; range.value = i; }
          range.addEventListener("input", function () { show(+range.value); });
          play.addEventListener("click", function () {
            if (timer) { clearInterval(timer); timer = null; play.textContent = "▶"; return; }
            play.textContent = "❚❚";
            timer = setInterval(function () { var i = (+range.value + 1) % frames.length; show(i); }, 250);
          });
          frames.forEach(function (f) { var p = new Image(); p.src = f; });
        })();
        </script>
        """
    }

    /// The word picker: one block per word (all shown without scripts), a select to pick one.
    static func picker(words: [String], blocks: [String]) -> String {
        let options = words.enumerated().map { "<option value=\"\($0.offset)\">\(escape($0.element))</option>" }.joined()
        let items = blocks.enumerated().map { "<div class=\"word\" data-word=\"\($0.offset)\">\($0.element)</div>" }.joined(separator: "\n")
        return """
        <div class="picker" id="picker" hidden><label>word <select id="word-select">\(options)</select></label>
        <button type="button" id="word-all">show all</button></div>
        <div class="words" id="words">\(items)</div>
        <script>
        (function () {
          var sel = document.getElementById("word-select"), all = document.getElementById("word-all");
          var blocks = document.querySelectorAll("#words .word");
          document.getElementById("picker").hidden = false;
          function pick(i) { blocks.forEach(function (b) { b.hidden = i >= 0 && b.dataset.word != String(i); }); }
          sel.addEventListener("change", function () { pick(+sel.value); });
          all.addEventListener("click", function () { pick(-1); });
          pick(0);
        })();
        </script>
        """
    }

    mutating func raw(_ html: String) { body += html }

    func render() -> String {
        """
        <!doctype html>
        <html lang="en"><head><meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>\(Self.escape(title))</title>
        <style>
        :root { --ink:#1f2328; --muted:#59636e; --rule:#d1d9e0; --panel:#f6f8fa; }
        * { box-sizing: border-box; }
        body { margin:0; font:16px/1.5 "DejaVu Sans", system-ui, sans-serif; color:var(--ink); background:#fff; }
        header, section { max-width: 1100px; margin: 0 auto; padding: 12px 20px; }
        header { border-bottom: 1px solid var(--rule); }
        h1 { font-size: 1.5rem; margin: .3em 0; } h2 { font-size: 1.2rem; margin: 1.2em 0 .4em; border-bottom: 1px solid var(--rule); }
        nav a { margin-right: 1em; color: #0969da; white-space: nowrap; display: inline-block; } .note { color: var(--muted); font-size: .9rem; margin: .2em 0 .8em; }
        figure { margin: 0 0 16px; } figure img, .scrub img { max-width: 100%; height: auto; display: block; border-radius: 4px; }
        figcaption { color: var(--muted); font-size: .85rem; }
        .grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(240px, 1fr)); gap: 12px; }
        .controls { display: flex; align-items: center; gap: 10px; margin: 8px 0; }
        .controls input { flex: 1; min-width: 0; } .controls button, .picker button { font-size: 1rem; padding: 2px 10px; }
        output { font-variant-numeric: tabular-nums; color: var(--muted); font-size: .9rem; min-width: 14em; }
        .picker { margin: 6px 0 12px; } select { font-size: 1rem; }
        .word h3 { font-size: 1rem; margin: .6em 0 .3em; }
        pre { background: var(--panel); padding: 10px; overflow-x: auto; font-size: .85rem; }
        table { border-collapse: collapse; font-size: .9rem; margin: 8px 0 16px; }
        th, td { text-align: left; padding: 3px 14px 3px 0; border-bottom: 1px solid var(--rule); vertical-align: top; }
        th { color: var(--muted); font-weight: bold; } .num { text-align: right; font-variant-numeric: tabular-nums; }
        .card-text { display: none; } dt { font-weight: bold; color: var(--muted); font-size: .85rem; } dd { margin: 0 0 .4em; }
        @media (max-width: 600px) { body { font-size: 15px; } .grid { grid-template-columns: 1fr 1fr; }
          .controls { flex-wrap: wrap; } output { min-width: 0; flex-basis: 100%; }
          .card-img { display: none; } .card-text { display: block; } }
        \(style)</style></head>
        <body>
        \(body)
        </body></html>
        """
    }
}
