// Reading mama.xml without a DOM (include/mama/detail/xml/scan.hpp) and checking a file by what
// changed (XmlStateStore's checked-state cache), held against pugixml's reading of the whole
// document: the text decoder against pugixml on generated entity soup, for_each_machine/
// machines()/find() against the old DOM reading on tricky and generated files, and files changed
// behind the store's back (inside a machine, outside, breaking out of a machine, duplicating a
// name) read as a fresh store reads them.
#include <catch2/catch.hpp>
#include <filesystem>
#include <mama/xml_state_store.hpp>
#include <pugixml.hpp>
#include <random>
#include <string>
#include <vector>

#include "fuzz/round_trip.hpp"
#include "support.hpp"

namespace fs = std::filesystem;
using mama::JobRecord;
using mama::MachineInfo;
using mama::XmlStateStore;
using mama::XmlStoreOptions;
using mama::test::read_file;
using mama::test::TempDir;
using mama::test::write_file;

namespace {

// The store's reading before it scanned bytes: the whole document through pugixml.
struct DomReading {
  bool valid = false;
  std::vector<MachineInfo> machines;
};

DomReading dom_read(const std::string& content) {
  DomReading out;
  pugi::xml_document doc;
  if (!doc.load_buffer(content.data(), content.size(), mama::detail::xml_parse_flags)) return out;
  int roots = 0;
  for (pugi::xml_node n : doc.children())
    if (n.type() == pugi::node_element) ++roots;
  if (roots != 1 || std::string_view(doc.document_element().name()) != "settings") return out;
  out.valid = true;
  for (pugi::xml_node m : doc.document_element().children("machine")) {
    MachineInfo info;
    info.name = m.child("name").text().get();
    unsigned seen = 0;
    for (pugi::xml_node f : m.children()) {
      if (f.type() != pugi::node_element) continue;
      const std::string_view key = f.name();
      if (key == "name") continue;
      if (const auto member = mama::job_field(key)) {
        const auto bit =
            1u << (std::find(mama::job_field_names.begin(), mama::job_field_names.end(), key) -
                   mama::job_field_names.begin());
        if (!(seen & bit)) info.job.*member = f.text().get();
        seen |= bit;
        continue;
      }
      info.fields.emplace_back(key, f.text().get());
    }
    out.machines.push_back(std::move(info));
  }
  return out;
}

std::string pugixml_text(const std::string& raw) {
  pugi::xml_document doc;
  const std::string xml = "<a>" + raw + "</a>";
  REQUIRE(doc.load_buffer(xml.data(), xml.size(), mama::detail::xml_parse_flags));
  return doc.document_element().text().get();
}

XmlStoreOptions quick() {
  XmlStoreOptions o;
  o.sync = false;
  return o;
}

// Checks that the store reads `content` as the DOM does: refused exactly when the DOM refuses
// it; else machines() and for_each_machine() equal the DOM's machines, and find() of each
// uniquely named machine equals its job fields. Returns whether the file was valid.
bool agrees_with_dom(const fs::path& path, const std::string& content, XmlStateStore& store) {
  CHECK(mama::fuzz::pieces_agree(content) == "");
  write_file(path, content);
  const DomReading dom = dom_read(content);
  std::optional<XmlStateStore::transaction> t;
  try {
    t.emplace(store.begin());
  } catch (const mama::error& e) {
    CHECK_FALSE(dom.valid);
    CHECK(e.code() == mama::errc::bad_state_file);
    CHECK(read_file(path) == content);  // refused, file untouched
    return false;
  }
  REQUIRE(dom.valid);
  const auto listed = t->machines();
  REQUIRE(listed.size() == dom.machines.size());
  std::size_t i = 0;
  const MachineInfo* reused = nullptr;
  t->for_each_machine([&](const MachineInfo& m) {
    if (reused) CHECK(reused == &m);  // one object for the whole sweep
    reused = &m;
    REQUIRE(i < dom.machines.size());
    CHECK(m.name == dom.machines[i].name);
    CHECK(m.fields == dom.machines[i].fields);
    CHECK(m.job == dom.machines[i].job);
    CHECK(listed[i].name == m.name);
    CHECK(listed[i].fields == m.fields);
    CHECK(listed[i].job == m.job);
    ++i;
  });
  CHECK(i == dom.machines.size());
  for (const MachineInfo& m : dom.machines) {
    if (m.name.empty()) continue;
    const auto same = std::count_if(dom.machines.begin(), dom.machines.end(),
                                    [&](const MachineInfo& o) { return o.name == m.name; });
    if (same > 1) {
      CHECK_THROWS_AS(t->find(m.name), mama::error);
    } else {
      const auto found = t->find(m.name);
      REQUIRE(found);
      CHECK(*found == m.job);
    }
  }
  return true;
}

const std::string tricky =
    "<?xml version=\"1.0\"?>\r\n"
    "<!-- <machine><name>ghost</name></machine> -->\r\n"
    "<settings>\r\n"
    "  <machine><name>plain</name><os>fedora</os><job>a &amp; b</job><job_pid>1</job_pid>"
    "</machine>\r\n"
    "  <!-- <machine><name>ghost2</name></machine> -->\r\n"
    "  <machine>\r\n"
    "    <name><![CDATA[cdata-name]]></name>\r\n"
    "    <os> </os><arch/><kernel></kernel>\r\n"
    "    <note><!-- c --><?pi x?>after &#x41;&#66;&#0;gone</note>\r\n"
    "    <nested><b>inner</b>outer<![CDATA[later]]></nested>\r\n"
    "    <x a=\"1>2\" b='&lt;'>attr</x>\r\n"
    "    <job><![CDATA[<raw> & ]]></job><job>second ignored</job>\r\n"
    "    <job_host>h&#233;&#x1F600;&unknown;&amp</job_host>\r\n"
    "  </machine>\r\n"
    "  <machine><name>l&#97;b&lt;1&gt;</name><job_token/></machine>\r\n"
    "  <machine><name>dup</name><job>one</job></machine>\r\n"
    "  <machine><name>dup</name><job>two</job></machine>\r\n"
    "  <machine><os>nameless</os></machine>\r\n"
    "  <machine/>\r\n"
    "  <resource><name>not a machine</name></resource>\r\n"
    "  <group><machine><name>too deep</name></machine></group>\r\n"
    "  <machine><name>last</name><![CDATA[<machine><name>in cdata</name></machine>]]></machine>\r\n"
    "</settings>\r\n";

}  // namespace

TEST_CASE("entity decoding matches pugixml on generated text") {
  for (const char* raw : {"",
                          "plain",
                          "&amp;&lt;&gt;&quot;&apos;",
                          "&#65;&#x42;&#x6a;",
                          "&#;",
                          "&#x;",
                          "&#12a;",
                          "&#xZ;",
                          "&am",
                          "&amp",
                          "&a&amp;",
                          "&#4294967297;",
                          "&#x110000;",
                          "&#x10FFFF;",
                          "a&#0;b",
                          "&#X41;",
                          "&AMP;",
                          "&&amp;;",
                          "&#65",
                          " \t\r\n ",
                          "&#xffffffff;"}) {
    INFO("raw: " << raw);
    std::string decoded;
    mama::detail::decode_xml_text(decoded, raw);
    CHECK(decoded == pugixml_text(raw));
  }
  // Generated soup of the characters references are made of.
  const std::string alphabet = "&#x;amplgtquosF09 1";
  std::mt19937 rng(1234);
  for (int n = 0; n < 20000; ++n) {
    std::string raw;
    const auto len = rng() % 14;
    for (unsigned i = 0; i < len; ++i) raw += alphabet[rng() % alphabet.size()];
    std::string decoded;
    mama::detail::decode_xml_text(decoded, raw);
    INFO("raw: " << raw);
    REQUIRE(decoded == pugixml_text(raw));
  }
}

TEST_CASE("for_each_machine, machines() and find() read as the DOM did") {
  TempDir dir;
  const auto path = dir / "mama.xml";
  XmlStateStore store(path, quick());

  SECTION("a tricky file") {
    REQUIRE(agrees_with_dom(path, tricky, store));
    const auto t = store.begin();
    CHECK_FALSE(t.find("ghost"));  // in a comment
    CHECK_FALSE(t.find("ghost2"));
    CHECK_FALSE(t.find("in cdata"));
    CHECK_FALSE(t.find("too deep"));
    CHECK_FALSE(t.find("not a machine"));
    REQUIRE(t.find("cdata-name"));
    CHECK(t.find("cdata-name")->job == "<raw> & ");
    CHECK(t.find("cdata-name")->host == "h\xc3\xa9\xf0\x9f\x98\x80&unknown;&amp");
    REQUIRE(t.find("lab<1>"));
    CHECK(t.find("plain")->job == "a & b");
    std::size_t count = 0;
    t.for_each_machine([&](const MachineInfo& m) {
      if (m.name == "cdata-name") {
        CHECK(m.field("note") == "after AB");
        CHECK(m.field("nested") == "outer");
        CHECK(m.field("os") == " ");
        CHECK(m.field("x") == "attr");
      }
      ++count;
    });
    CHECK(count == 8);
  }

  SECTION("the fuzz corpus, its regressions and the test data") {
    int valid = 0, files = 0;
    for (const char* sub : {"tests/fuzz/corpus", "tests/fuzz/regressions", "tests/data"}) {
      const fs::path from = fs::path(MAMA_TEST_DATA_DIR).parent_path().parent_path() / sub;
      REQUIRE(fs::is_directory(from));
      for (const auto& entry : fs::directory_iterator(from)) {
        if (entry.path().extension() != ".xml") continue;
        INFO(entry.path());
        ++files;
        valid += agrees_with_dom(path, read_file(entry.path()), store);
      }
    }
    CHECK(files >= 10);
    CHECK(valid >= 5);
  }

  SECTION("generated files: every construct in random places") {
    const std::vector<std::string> pieces = {"<os>fedora</os>",
                                             "<os/>",
                                             "<os> </os>",
                                             "<arch><![CDATA[x86]]></arch>",
                                             "<!-- <machine><name>c</name></machine> -->",
                                             "<?pi data?>",
                                             "\r\n  ",
                                             "\n",
                                             "<job>j &amp; k</job>",
                                             "<job/>",
                                             "<job_pid>12</job_pid>",
                                             "<job_pid>&#49;&#50;</job_pid>",
                                             "<deep><a><b>t</b></a>u</deep>",
                                             "<e a='>'/>",
                                             "<job_token>t&#x41;</job_token>",
                                             "<job_host><!--x-->h</job_host>",
                                             "text",
                                             "&amp;"};
    std::mt19937 rng(99);
    int valid = 0;
    for (int n = 0; n < 300; ++n) {
      std::string s = "<?xml version=\"1.0\"?>\n<settings>\n";
      const int count = 1 + static_cast<int>(rng() % 6);
      for (int m = 0; m < count; ++m) {
        s += "  <machine>";
        const int fields = static_cast<int>(rng() % 6);
        for (int f = 0; f < fields; ++f) s += pieces[rng() % pieces.size()];
        // Names: plain, with entities, in CDATA, duplicated, missing.
        switch (rng() % 5) {
          case 0:
            s += "<name>m" + std::to_string(m) + "</name>";
            break;
          case 1:
            s += "<name>m&#" + std::to_string(48 + m) + ";</name>";
            break;
          case 2:
            s += "<name><![CDATA[m" + std::to_string(m) + "]]></name>";
            break;
          case 3:
            s += "<name>same</name>";
            break;
          default:
            break;
        }
        for (int f = 0; f < fields; ++f) s += pieces[rng() % pieces.size()];
        s += "</machine>\n";
        if (rng() % 4 == 0) s += "  " + pieces[rng() % pieces.size()] + "\n";
      }
      s += "</settings>\n";
      INFO("file:\n" << s);
      const bool ok = agrees_with_dom(path, s, store);
      valid += ok;
      // Every valid generated file is checked in pieces, not only the whole document.
      CHECK(mama::detail::check_in_pieces(s).has_value() == ok);
    }
    CHECK(valid > 200);
  }
}

TEST_CASE("a whole file is checked in pieces as the whole document reads it") {
  using namespace std::string_literals;
  using mama::detail::check_in_pieces;
  using mama::fuzz::whole_document_machines;
  TempDir dir;
  const auto path = dir / "mama.xml";
  const std::string head = "<?xml version=\"1.0\"?>\n<settings>\n";
  const std::string tail = "</settings>\n";

  // The pieces check accepts each of these, with the machines (extents and names) of the
  // whole document's parse; the store reads them as the DOM did.
  const std::vector<std::string> valid = {
      head + "<machine><name>a</name></machine>\n<!-- c -->\n<machine><name>b</name></machine>\n" +
          tail,
      head + "<machine><name><![CDATA[cd<ata>]]></name></machine>" +
          "<machine><name>&#x41;&lt;&amp;b</name></machine>\n" + tail,
      head + "<!-- <machine><name>ghost</name></machine> -->\n" +
          "<![CDATA[<machine><name>ghost</name></machine>]]>\n" +
          "<group note=\"<machine/>\" other='<machine><name>x</name></machine>'>" +
          "<machine><name>in group</name></machine></group>\n" +
          "<machine><name>real</name></machine>\n" + tail,
      head + "<machine><name>outer</name><sub><machine><name>inner</name></machine></sub>" +
          "</machine>\n" + tail,
      "<?xml version=\"1.0\"?>\r\n<settings>\r\n  <machine>\r\n    <name>crlf</name>\r\n"
      "  </machine>\r\n  <machine>\r\n    <name>two</name>\r\n  </machine>\r\n</settings>\r\n",
      head + "<machine id=\"a>b\" k='>'><name>gt</name></machine>\n" + tail,
      head + "<machine/>\n<machine />\n<machine\n/><machine><name>n</name></machine>" + tail,
      head + "<machine ><name>sp</name></machine ><machine\t\n><name>tab</name></machine\n>" + tail,
      head + "<machines><machine><name>deep</name></machine></machines>" +
          "<machine_x/><machinery><name>no</name></machinery>" +
          "<machine><name>yes</name></machine>" + tail,
      "\xef\xbb\xbf<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<?pi x?>\n<!-- prolog -->\n"
      "<settings version=\"2\">text &amp; more<machine><name>bom</name></machine>text</settings>"
      "\n<!-- after -->\n<?after?>\n",
      head + "<machine><name>x</name><job><![CDATA[</machine></settings>]]></job>" +
          "<os><!-- </machine> --></os><?pi </machine>?></machine>" + tail,
      "<settings><machine><name>no declaration</name></machine></settings>",
  };
  for (const std::string& content : valid) {
    INFO("file:\n" << content);
    const auto pieces = check_in_pieces(content);
    REQUIRE(pieces);
    CHECK(mama::fuzz::pieces_agree(content) == "");
    CHECK_FALSE(pieces->extents.empty());
    XmlStateStore store(path, quick());
    CHECK(agrees_with_dom(path, content, store));
  }
  {
    const auto pieces = check_in_pieces(valid[2]);
    REQUIRE(pieces);
    CHECK(pieces->names == std::vector<std::string>{"real"});
    const auto nested = check_in_pieces(valid[3]);
    REQUIRE(nested);
    CHECK(nested->names == std::vector<std::string>{"outer"});
    const auto entity = check_in_pieces(valid[1]);
    REQUIRE(entity);
    CHECK(entity->names == std::vector<std::string>{"cd<ata>", "A<&b"});
  }

  // Valid, but the pieces check cannot tell: the store checks the whole document.
  const std::vector<std::string> declined = {
      "<?xml version=\"1.0\"?>\n<!DOCTYPE settings>\n<settings><machine><name>d</name>"
      "</machine></settings>\n",
      "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>\n<settings><machine><name>l</name>"
      "</machine></settings>\n",
      head + tail,  // no machine: nothing to save
  };
  for (const std::string& content : declined) {
    INFO("file:\n" << content);
    CHECK_FALSE(check_in_pieces(content));
    CHECK(whole_document_machines(content));
    XmlStateStore store(path, quick());
    CHECK(agrees_with_dom(path, content, store));
  }

  // Invalid: the pieces check declines, and the store refuses as it did (the whole parse's
  // message), leaving the file byte for byte.
  const std::vector<std::string> invalid = {
      head + "<machine><name>unclosed</name>\n" + tail,
      head + "<machine><name>a</name><job></machine></settings></job></machine>\n" + tail,
      head + "<machine><name>a</nam></machine>\n" + tail,
      head + "<machine><name>a</name><os><b></os></b></machine>\n" + tail,
      head + "<machine><name>a</name></machine></settings>\n<machine><name>b</name></machine>\n" +
          tail,
      head + "<machine><name>a</name></machine>\n< garbage >\n<machine><name>b</name></machine>" +
          tail,
      head + "<machine><name>a</name></machine>\n</oops>\n<machine><name>b</name></machine>" + tail,
      head + "<machine><name>a</name></machine>\n" + tail + "<settings></settings>\n",
      head + "<machine><name>a</name></machine>\n" + tail + "<machine><name>b</name></machine>\n",
      head + "<machine><name>a\0b</name></machine>\n"s + tail,
      head + "<machine><name>a</name></machine>\n\0"s + tail,
      head + "<machine id=1><name>a</name></machine>\n" + tail,
      head + "<machine><name>a</name><!-- unclosed comment </machine>\n" + tail,
      head + "<machine><name>a</name><![CDATA[ unclosed </machine>\n" + tail,
      head + "<machine><name>a</name></machine>\n<machine><name>b</name></machine>" + tail +
          "</settings>",
  };
  for (const std::string& content : invalid) {
    INFO("file:\n" << content);
    CHECK_FALSE(check_in_pieces(content));
    CHECK_FALSE(whole_document_machines(content));
    write_file(path, content);
    XmlStateStore store(path, quick());
    CHECK_THROWS_MATCHES(store.begin(), mama::error,
                         Catch::Predicate<mama::error>(
                             [&](const mama::error& e) {
                               return e.code() == mama::errc::bad_state_file &&
                                      std::string_view(e.what()).find(path.string()) !=
                                          std::string_view::npos;
                             },
                             "bad_state_file naming the file"));
    CHECK(read_file(path) == content);
  }
}

TEST_CASE("the pieces check never accepts what the whole document refuses: mutated files") {
  // Every single-byte deletion, and insertions of markup bytes, in a file with most
  // constructs: where check_in_pieces accepts, the whole document agrees (pieces_agree).
  const std::string base =
      "<?xml version=\"1.0\"?>\n<!-- c -->\n<settings>\n"
      "  <machine a=\"x>\"><name>a&amp;</name><os><![CDATA[<x>]]></os><!-- m --></machine>\n"
      "  <group><machine><name>g</name></machine></group>\n"
      "  <machine><name><![CDATA[b]]></name><?pi ?><job/></machine>\n"
      "  <machine/>\n"
      "</settings>\n";
  REQUIRE(mama::detail::check_in_pieces(base));
  int accepted = 0, tried = 0;
  const std::string inserts[] = {"<",           ">",         "/",   "\"",         "'",
                                 "<!--",        "-->",       "]]>", "</machine>", "<machine>",
                                 "</settings>", "<![CDATA[", "?>",  "&"};
  for (std::size_t at = 0; at <= base.size(); ++at) {
    std::vector<std::string> variants;
    if (at < base.size()) variants.push_back(base.substr(0, at) + base.substr(at + 1));
    for (const std::string& ins : inserts)
      variants.push_back(base.substr(0, at) + ins + base.substr(at));
    for (const std::string& v : variants) {
      INFO("file:\n" << v);
      ++tried;
      const std::string failure = mama::fuzz::pieces_agree(v);
      if (!failure.empty()) FAIL(failure);
      if (mama::detail::check_in_pieces(v)) ++accepted;
    }
  }
  // Many variants stay valid (a byte in text, a comment) and are checked in pieces.
  CHECK(accepted > tried / 10);
}

TEST_CASE("a file changed behind the store's back is checked as a fresh store checks it") {
  TempDir dir;
  const auto path = dir / "mama.xml";
  const std::string base =
      "<?xml version=\"1.0\"?>\n<settings>\n"
      "  <machine>\n    <name>a</name>\n    <os>fedora</os>\n    <job/>\n  </machine>\n"
      "  <!-- between -->\n"
      "  <machine>\n    <name>b</name>\n    <os>debian</os>\n    <job/>\n  </machine>\n"
      "  <machine>\n    <name>c</name>\n    <job/>\n  </machine>\n"
      "</settings>\n";
  write_file(path, base);
  XmlStateStore store(path, quick());
  XmlStateStore fresh_each_time_path_only(path, quick());
  { REQUIRE(store.begin().machines().size() == 3); }  // the store remembers these bytes

  const auto replaced = [&](std::string_view from, std::string_view to) {
    std::string s = base;
    const auto at = s.find(from);
    REQUIRE(at != std::string::npos);
    s.replace(at, from.size(), to);
    return s;
  };
  const auto expect_same_as_fresh = [&](const std::string& content) {
    INFO("content:\n" << content);
    XmlStateStore fresh(path, quick());
    write_file(path, content);
    bool fresh_ok = true;
    std::vector<MachineInfo> fresh_machines;
    try {
      fresh_machines = fresh.begin().machines();
    } catch (const mama::error&) {
      fresh_ok = false;
    }
    write_file(path, base);
    { REQUIRE(store.begin().machines().size() == 3); }  // remembered: base
    write_file(path, content);
    try {
      const auto got = store.begin().machines();
      REQUIRE(fresh_ok);
      REQUIRE(got.size() == fresh_machines.size());
      for (std::size_t i = 0; i < got.size(); ++i) {
        CHECK(got[i].name == fresh_machines[i].name);
        CHECK(got[i].fields == fresh_machines[i].fields);
        CHECK(got[i].job == fresh_machines[i].job);
      }
    } catch (const mama::error& e) {
      CHECK_FALSE(fresh_ok);
      CHECK(e.code() == mama::errc::bad_state_file);
      CHECK_THAT(e.what(), Catch::Contains(path.string()));
    }
    CHECK(read_file(path) == content);
    return fresh_ok;
  };

  SECTION("a job written inside one machine, as the PHP tool writes it") {
    const auto s = replaced("<name>b</name>\n    <os>debian</os>\n    <job/>",
                            "<name>b</name>\n    <os>debian</os>\n    <job>php job</job>");
    CHECK(expect_same_as_fresh(s));
    write_file(path, s);
    CHECK(store.begin().find("b")->job == "php job");
    CHECK(store.begin().find("c")->idle());
  }
  SECTION("invalid XML inside one machine is refused with its line") {
    CHECK_FALSE(expect_same_as_fresh(replaced("<os>debian</os>", "<os>debian</oss>")));
    write_file(path, replaced("<os>debian</os>", "<os>debian</oss>"));
    CHECK_THROWS_WITH(store.begin(), Catch::Contains("is not valid XML") &&
                                         Catch::Contains("line 11") &&
                                         Catch::Contains(path.string()));
  }
  SECTION("a change inside a machine that closes <settings> early is refused") {
    CHECK_FALSE(expect_same_as_fresh(
        replaced("<os>debian</os>", "<os>debian</os></machine></settings><settings><machine>")));
  }
  SECTION("a machine renamed to another's name is refused by find") {
    CHECK(expect_same_as_fresh(replaced("<name>c</name>", "<name>a</name>")));
    write_file(path, replaced("<name>c</name>", "<name>a</name>"));
    const auto t = store.begin();
    CHECK_THROWS_WITH(t.find("a"), Catch::Contains("twice"));
    CHECK_FALSE(t.find("c"));
    CHECK(t.find("b"));
  }
  SECTION("a machine renamed, written with an entity") {
    CHECK(expect_same_as_fresh(replaced("<name>c</name>", "<name>&#100;</name>")));
    write_file(path, replaced("<name>c</name>", "<name>&#100;</name>"));
    CHECK(store.begin().find("d"));
    CHECK_FALSE(store.begin().find("c"));
  }
  SECTION("a machine turned into another element, or into a comment") {
    CHECK(
        expect_same_as_fresh(replaced("<machine>\n    <name>b</name>\n    <os>debian</os>\n    "
                                      "<job/>\n  </machine>",
                                      "<resource>\n    <name>b</name>\n  </resource>")));
    CHECK(
        expect_same_as_fresh(replaced("<machine>\n    <name>b</name>\n    <os>debian</os>\n    "
                                      "<job/>\n  </machine>",
                                      "<!-- <machine><name>b</name></machine> -->")));
  }
  SECTION("machines added and removed, changes between machines") {
    CHECK(expect_same_as_fresh(replaced("<!-- between -->", "<machine><name>n</name></machine>")));
    CHECK(expect_same_as_fresh(replaced("<!-- between -->", "<!-- changed -->")));
    CHECK(expect_same_as_fresh(replaced("</machine>\n  <!-- between -->",
                                        "</machine>\n  <machine><name>x</name></machine>\n  "
                                        "<!-- between -->")));
    CHECK(expect_same_as_fresh(
        replaced("  <machine>\n    <name>c</name>\n    <job/>\n  </machine>\n", "")));
    CHECK(expect_same_as_fresh(
        replaced("<name>a</name>\n    <os>fedora</os>\n    <job/>\n  </machine>\n  <!-- between "
                 "-->\n  <machine>\n    <name>b</name>",
                 "<name>a2</name>\n  </machine>\n  <machine>\n    <name>b2</name>")));
    CHECK_FALSE(expect_same_as_fresh(replaced("</settings>", "</settings><extra/>")));
    CHECK_FALSE(expect_same_as_fresh(replaced("<name>a</name>", "<name>a</name></machine>")));
    CHECK_FALSE(expect_same_as_fresh(replaced("<name>a</name>", "<name>a<!-- </name>")));
    CHECK_FALSE(expect_same_as_fresh(replaced("<name>a</name>", "<name>a<![CDATA[</name>")));
    CHECK_FALSE(expect_same_as_fresh(replaced("<name>a</name>", "<!DOCTYPE x><name>a</name>")));
  }
  SECTION("bytes a fragment's parse treats specially: a byte order mark, markup in text") {
    const std::string b_machine =
        "<machine>\n    <name>b</name>\n    <os>debian</os>\n    <job/>\n  </machine>";
    // A UTF-8 byte order mark where machine b began: text of <settings> in the whole file.
    expect_same_as_fresh(replaced(b_machine, "\xef\xbb\xbf" + b_machine));
    expect_same_as_fresh(replaced(b_machine, "\xef\xbb\xbf<machine><name>b2</name></machine>"));
    // Markup-looking text that is not markup.
    CHECK(expect_same_as_fresh(
        replaced("<os>debian</os>", "<os><![CDATA[</machine></settings><machine>]]></os>")));
    CHECK(expect_same_as_fresh(
        replaced("<os>debian</os>", "<os>debian</os><!-- </machine></settings> -->")));
    CHECK(expect_same_as_fresh(replaced("<os>debian</os>", "<os x=\"</machine>\">d</os>")));
    CHECK(expect_same_as_fresh(replaced("<os>debian</os>", "<?pi </machine> ?><os>d</os>")));
  }
  SECTION("NUL bytes (a block of zeros a crash can leave) are refused, wherever they start") {
    using namespace std::string_literals;
    const std::string b_machine =
        "<machine>\n    <name>b</name>\n    <os>debian</os>\n    <job/>\n  </machine>";
    // Zeros from the first byte of a machine on: pugixml reads a fragment only up to a NUL, so
    // a run of zeros alone would parse as no machines at all.
    CHECK_FALSE(expect_same_as_fresh(replaced(b_machine, std::string(b_machine.size(), '\0'))));
    // A job written into b and zeros after it, inside the changed run: the fragment would end
    // after b and machine c would be lost.
    CHECK_FALSE(expect_same_as_fresh(
        replaced("<job/>\n  </machine>\n  <machine>\n    <name>c</name>",
                 "<job>x</job>\n  </machine>\0\0<machine>\n    <name>c</name>"s)));
    CHECK_FALSE(expect_same_as_fresh(replaced("<os>debian</os>", "<os>debian</os>\0"s)));
    // A machine whose first bytes look like UTF-16 or UTF-32 to pugixml's encoding detection.
    CHECK_FALSE(expect_same_as_fresh(replaced(b_machine, "<\0\0\0"s + b_machine.substr(4))));
    write_file(path, replaced(b_machine, std::string(b_machine.size(), '\0')));
    CHECK_THROWS_WITH(store.begin(),
                      Catch::Contains("is not valid XML") && Catch::Contains(path.string()));
  }
}

TEST_CASE("after a commit the store reads its own save without checking it again, and right") {
  TempDir dir;
  const auto path = dir / "mama.xml";
  std::string s = "<?xml version=\"1.0\"?>\n<settings>\n";
  for (int i = 0; i < 50; ++i)
    s += "  <machine>\n    <name>m" + std::to_string(i) + "</name>\n    <os>x</os>\n  </machine>\n";
  s += "</settings>\n";
  write_file(path, s);
  XmlStateStore store(path, quick());
  JobRecord r{"a job", "1", "2", "host", "boot", "3", "tok"};
  for (int round = 0; round < 3; ++round) {
    for (int i : {3, 17, 49, 0}) {
      auto t = store.begin();
      r.job = "job " + std::to_string(round) + "/" + std::to_string(i);
      t.write("m" + std::to_string(i), r);
      t.write("m" + std::to_string((i + 7) % 50), JobRecord{});
      t.commit();
      // The same transaction goes on reading the saved bytes.
      CHECK(t.find("m" + std::to_string(i))->job == r.job);
    }
    const std::string now = read_file(path);
    const DomReading dom = dom_read(now);
    REQUIRE(dom.valid);
    const auto listed = store.begin().machines();
    REQUIRE(listed.size() == dom.machines.size());
    for (std::size_t i = 0; i < listed.size(); ++i) {
      CHECK(listed[i].name == dom.machines[i].name);
      CHECK(listed[i].job == dom.machines[i].job);
      CHECK(listed[i].fields == dom.machines[i].fields);
    }
    // A fresh store, checking the whole file, reads the same.
    const auto fresh = XmlStateStore(path, quick()).begin().machines();
    REQUIRE(fresh.size() == listed.size());
    for (std::size_t i = 0; i < listed.size(); ++i) CHECK(fresh[i].job == listed[i].job);
  }
}

TEST_CASE("a file in another encoding than UTF-8 is read as a fresh store reads it") {
  // pugixml converts a whole document declared ISO-8859-1 to UTF-8, but a machine parsed by
  // itself is taken as UTF-8: a byte 0xFC written by the PHP tool in such a file must not be
  // read one way by a store that remembers the file and another by a fresh one.
  TempDir dir;
  const auto path = dir / "mama.xml";
  const std::string base =
      "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>\n<settings>\n"
      "  <machine>\n    <name>a</name>\n    <owner>x</owner>\n    <job/>\n  </machine>\n"
      "  <machine>\n    <name>b</name>\n    <job/>\n  </machine>\n</settings>\n";
  write_file(path, base);
  XmlStateStore store(path, quick());
  REQUIRE(store.begin().machines().size() == 2);  // ASCII only: read as before

  std::string latin1 = base;
  latin1.replace(latin1.find("<owner>x"), 8, "<owner>M\xfcller");
  write_file(path, latin1);
  std::string fresh_error;
  try {
    XmlStateStore(path, quick()).begin();
  } catch (const mama::error& e) {
    fresh_error = e.what();
  }
  REQUIRE_FALSE(fresh_error.empty());
  CHECK_THAT(fresh_error, Catch::Contains(path.string()) && Catch::Contains("UTF-8") &&
                              Catch::Contains("ISO-8859-1"));
  try {
    store.begin();
    FAIL("the store that remembered the ASCII file read the ISO-8859-1 bytes as UTF-8");
  } catch (const mama::error& e) {
    CHECK(e.what() == fresh_error);
    CHECK(e.code() == mama::errc::bad_state_file);
  }
  CHECK(read_file(path) == latin1);

  // Job text mama would write as UTF-8 into such a file is refused, the file unchanged.
  write_file(path, base);
  JobRecord r;
  r.job = "M\xc3\xbcller";
  {
    auto t = store.begin();
    CHECK_THROWS_WITH(t.write("b", r), Catch::Contains("UTF-8") && Catch::Contains(path.string()));
    r.job = "ascii job";
    t.write("b", r);
    t.commit();
  }
  CHECK(XmlStateStore(path, quick()).begin().find("b")->job == "ascii job");
}
