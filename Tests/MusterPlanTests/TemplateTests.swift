import Testing
@testable import MusterPlan

/// The Mustache subset muster's templates are written in: what renders how, and what is refused
/// at its place.
@Suite struct TemplateTests {
    func render(_ source: String, _ context: TemplateContext) throws -> String {
        try Template(source, file: "t.mustache").render(context)
    }

    func refusal(_ source: String) -> Template.CompileError? {
        do {
            _ = try Template(source, file: "templates/t.mustache")
            return nil
        } catch {
            return error
        }
    }

    @Test func variablesAndTextRenderAsWritten() throws {
        #expect(try render("a {{x}} b {{ x }}\n", ["x": .text("1")]) == "a 1 b 1\n")
        #expect(try render("[{{missing}}]", [:]) == "[]")
        #expect(try render("{{flag}}", ["flag": .flag(true)]) == "true")
        #expect(try render("no tags, { single } braces", [:]) == "no tags, { single } braces")
    }

    @Test func sectionsShowHideRepeatAndScope() throws {
        let context: TemplateContext = [
            "yes": .flag(true), "no": .flag(false), "name": .text("outer"),
            "items": .list([["name": .text("a")], ["name": .text("b"), "extra": .text("!")]]),
            "empty": .list([]), "word": .text(""),
        ]
        #expect(try render("{{#yes}}Y{{/yes}}{{#no}}N{{/no}}{{#missing}}M{{/missing}}", context) == "Y")
        // A list repeats its body with each item's names first, the outer ones behind them.
        #expect(try render("{{#items}}{{name}}{{extra}},{{/items}}", context) == "a,b!,")
        #expect(try render("{{#items}}{{#yes}}{{name}}{{/yes}}{{/items}}", context) == "ab")
        #expect(try render("{{#empty}}E{{/empty}}", context) == "")
        // Text opens a section once, even when empty (as swift-mustache did), with `{{.}}` as itself.
        #expect(try render("{{#name}}[{{.}}]{{/name}}{{#word}}W{{/word}}", context) == "[outer]W")
    }

    @Test func invertedSectionsShowWhatSectionsHide() throws {
        let context: TemplateContext = ["yes": .flag(true), "no": .flag(false), "empty": .list([]),
                                        "items": .list([[:]]), "text": .text("t")]
        let rendered = try render("{{^yes}}1{{/yes}}{{^no}}2{{/no}}{{^missing}}3{{/missing}}{{^empty}}4{{/empty}}{{^items}}5{{/items}}{{^text}}6{{/text}}", context)
        #expect(rendered == "234")
    }

    @Test func standaloneTagsTakeTheirLine() throws {
        let source = """
            first
              {{#yes}}
            inside
              {{/yes}}
            {{! a comment }}
            {{% CONTENT_TYPE: TEXT}}
            last {{#yes}}kept{{/yes}}
              {{x}}
            end
            """
        #expect(try render(source, ["yes": .flag(true), "x": .text("v")]) == "first\ninside\nlast kept\n  v\nend")
        // A standalone tag at the very end, and one with blanks after it.
        #expect(try render("a\n{{#yes}}  \nb\n{{/yes}}", ["yes": .flag(true)]) == "a\nb\n")
        #expect(try render("{{#yes}}\r\nb\r\n{{/yes}}\r\n", ["yes": .flag(true)]) == "b\r\n")
    }

    @Test func contentTypesEscapeDoubleMustachesOnly() throws {
        let context: TemplateContext = ["v": .text("yes"), "s": .text("it's a b"), "h": .text("<a href='x'>&\"")]
        #expect(try render("{{% CONTENT_TYPE: YAML}}\nk: {{v}}\nr: {{{v}}}\nu: {{&v}}\n", context) == "k: 'yes'\nr: yes\nu: yes\n")
        #expect(try render("{{% CONTENT_TYPE: SHELL}}\necho {{s}} {{{s}}}\n", context) == "echo 'it'\\''s a b' it's a b\n")
        // HTML until a pragma says otherwise, as in Mustache; TEXT leaves values alone.
        #expect(try render("{{h}}\n{{% CONTENT_TYPE: TEXT}}\n{{h}}", context) == "&lt;a href=&#39;x&#39;&gt;&amp;&quot;\n<a href='x'>&\"")
        // A pragma holds to the end of its section.
        #expect(try render("{{#yes}}\n{{% CONTENT_TYPE: SHELL}}\n{{s}}\n{{/yes}}\n{{s}}", context.merging(["yes": .flag(true)]) { $1 })
                == "'it'\\''s a b'\nit&#39;s a b")
        // A flag renders as its word, escaped like any other value.
        #expect(try render("{{% CONTENT_TYPE: YAML}}\n{{f}} {{{f}}}", ["f": .flag(true)]) == "'true' true")
    }

    @Test func unsupportedConstructsAreRefusedAtTheirPlace() throws {
        let cases: [(String, Int, Int, String)] = [
            ("line one\n  {{> partial}}\n", 2, 3, "partials"),
            ("{{<parent}}{{/parent}}", 1, 1, "inheritance"),
            ("{{$block}}x{{/block}}", 1, 1, "inheritance"),
            ("a\nb {{=<% %>=}}", 2, 3, "set delimiters"),
            ("{{a.b}}", 1, 1, "dotted names"),
            ("{{#upper(name)}}{{/upper(name)}}", 1, 1, "transforms"),
            ("{{% CONTENT_TYPE: XML}}", 1, 1, "unknown content type 'XML'"),
            ("{{% OTHER: x}}", 1, 1, "unknown pragma"),
            ("ok\n{{#open}}\nnever closed\n", 2, 1, "never closed"),
            ("{{#a}}\n{{/b}}\n", 2, 1, "closes section 'a' opened at 1:1"),
            ("{{/a}}", 1, 1, "closes no open section"),
            ("x {{name", 1, 3, "unfinished tag"),
            ("{{{name}}", 1, 1, "unfinished tag"),
            ("{{}}", 1, 1, "without a name"),
            ("é {{na me}}", 1, 3, "not a name"),
        ]
        for (source, line, column, problem) in cases {
            let error = try #require(refusal(source), "\(source) was not refused")
            #expect(error.file == "templates/t.mustache")
            #expect((error.line, error.column) == (line, column), "\(source): \(error)")
            #expect(error.description.hasPrefix("templates/t.mustache:\(line):\(column): "), "\(error)")
            #expect(error.problem.contains(problem), "\(source): \(error)")
        }
    }

    @Test func templateSetNamesTheFileOfARefusal() throws {
        var texts = Dictionary(uniqueKeysWithValues: TemplateSet.names.map { ($0, "x\n") })
        texts["etcd.service"] = "ok\n{{>unit}}\n"
        do {
            _ = try TemplateSet(texts: texts, origin: "/srv/templates")
            Issue.record("a partial was accepted")
        } catch let error as TemplateError {
            #expect(error.description.hasPrefix("template /srv/templates/etcd.service.mustache:2:1: partials"), "\(error)")
        }
    }
}
