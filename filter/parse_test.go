// SPDX-License-Identifier: MIT

package filter

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"
)

func parseOne(t *testing.T, text string) (*Builder, ListStats, []ListWarning, error) {
	t.Helper()
	b := NewBuilder()
	var ws []ListWarning
	st, err := b.ParseList(strings.NewReader(text), "t.txt", func(w ListWarning) { ws = append(ws, w) })
	return b, st, ws, err
}

// TestParseLines classifies single lines: rules, comments, unsupported and
// malformed ones, with the warning each produces.
func TestParseLines(t *testing.T) {
	const (
		rule = iota
		comment
		unsupported
		malformed
		ignored
	)
	cases := []struct {
		line   string
		class  int
		reason string // substring of the warning reason
	}{
		{"||example.org^", rule, ""},
		{"|example.org^", rule, ""},
		{"@@||example.org^", rule, ""},
		{"@@|example.org^", rule, ""},
		{"@@||example.org^|", rule, ""},
		{"||example.org", rule, ""},
		{"example.org", rule, ""},
		{"example.org.", rule, ""},
		{"EXAMPLE.org", rule, ""},
		{"  example.org  ", rule, ""},
		{"example.org # comment", rule, ""},
		{"example.org\t# comment", rule, ""},
		{"0.0.0.0 example.org", rule, ""},
		{"0.0.0.0\texample.org\twww.example.org", rule, ""},
		{"192.0.2.1 nas.home # my NAS", rule, ""},
		{"2001:db8::1 nas.home", rule, ""},
		{"fe80::1%lo0 router.home", rule, ""},
		{"0.0.0.0 bad_name!.org good.org", rule, ""}, // one good name: the line is a rule
		{"# comment", comment, ""},
		{"! comment", comment, ""},
		{"   # indented comment", comment, ""},
		{"", comment, ""},
		{" \t ", comment, ""},
		{"##.ad-banner", comment, ""}, // generic cosmetic rules start with '#'
		{"127.0.0.1 localhost", ignored, ""},
		{"::1 ip6-localhost ip6-loopback", ignored, ""},
		{"||example.org^$important", rule, ""},
		{"||example.org^$dnsrewrite=1.2.3.4", rule, ""},
		{"$denyallow=com", rule, ""},
		{"||ad*.example.org^", rule, ""},
		{"*.example.org", rule, ""},
		{"/ads[0-9]+\\.example/", rule, ""},
		{"@@/ads/", rule, ""},
		{".example.org^", rule, ""},
		{"example.org^", rule, ""},
		{"@@example.org^", rule, ""},
		{"@@example.org", rule, ""},
		{"||банрек.рус^", rule, ""},
		{"0.0.0.0 пример.рф", rule, ""},
		{"198.51.100.7", rule, ""},
		{"||198.51.100.7^", rule, ""},
		{"198.51.100.0/24", rule, ""},
		{"||example.org/ads", unsupported, "path"},
		{"||example.org:8080", unsupported, "port"},
		{"||example.org^*partner=", unsupported, "URL rule"},
		{"://example.", unsupported, "URL rule"},
		{"http://example.org^", unsupported, "URL rule"},
		{"example.org##.banner", unsupported, "cosmetic"},
		{"example.org#%#window.x = 1;", unsupported, "cosmetic"},
		{"||example.org^$ctag=kids", unsupported, "$ctag unsupported"},
		{"||example.org^$third-party", unsupported, "$third-party unsupported"},
		{"||example.org^$client='Frank'", unsupported, "$client by name"},
		{"||example.org^$dnsrewrite=NOERROR;MX;10 mail.example.org", unsupported, "type MX unsupported"},
		{"/" + strings.Repeat("a", maxRegexLen+1) + "/", unsupported, "too slow"},
		{"/(ab|cd|ef){900}x/", unsupported, "too slow"},
		{"||example.org^$dnstype=BOGUS", malformed, "unknown DNS type"},
		{"||example.org^$dnsrewrite=noerror;a;1.2.3.4", rule, ""},
		{"||example.org^$dnsrewrite=FORMERR;;", rule, ""},
		{"||example.org^$process=firefox|~Safari", rule, ""},
		{"||example.org^$dnsrewrite=NOERROR;BOGUS;x", malformed, "unknown $dnsrewrite type"},
		{"||example.org^$dnsrewrite=FORMERR", malformed, "unknown $dnsrewrite keyword"},
		{"||example.org^$dnsrewrite=bad;syntax", malformed, "two ';'"},
		{"||example.org^$dnsrewrite=nonexisting;;", malformed, "unknown $dnsrewrite rcode"},
		{"||example.org^$dnsrewrite=BADVERS;;", unsupported, "extended rcode"},
		{"||example.org^$process=", malformed, "bad $process"},
		{"||example.org^$process=a|", malformed, "bad $process name"},
		{"||example.org^$process=" + strings.Repeat("p", 256), malformed, "bad $process name"},
		{"||example.org^$process=a\\,b", malformed, "bad $process name"},
		{"198.51.100.7$process=curl", unsupported, "unsupported on IP rules"},
		{"||example.org^$dnsrewrite=NOERROR;A;::1", malformed, "not an IPv4"},
		{"/a(b/", malformed, "bad regex"},
		{"||example.org^$important,important", malformed, "bad $important"},
		{"foo bar baz", malformed, "several words"},
		{"||exa mple.org^", malformed, "several words"},
		{"exa!mple.org", malformed, "invalid character"},
		{"||a..b^", malformed, "empty label"},
		{"||.^", malformed, "empty"},
		{"||^", malformed, "empty name"},
		{"||" + strings.Repeat("a", 64) + ".org^", malformed, "label longer than 63"},
		{"||" + strings.Repeat("abcdefghi.", 26) + "org^", malformed, "longer than 253"},
		{"0.0.0.0 exa!mple.org", malformed, "invalid character"},
		{"1.2.3.4.5 example.org", malformed, "several words"},
	}
	for _, tc := range cases {
		b, st, ws, err := parseOne(t, tc.line+"\n")
		if tc.class == malformed {
			// One malformed line and nothing else is "not a list".
			if !errors.Is(err, ErrNotAList) {
				t.Errorf("%q: err = %v, want ErrNotAList", tc.line, err)
			} else if !strings.Contains(err.Error(), tc.reason) {
				t.Errorf("%q: error %q lacks %q", tc.line, err, tc.reason)
			}
			// Next to a good line it is a per-line warning.
			b, st, ws, err = parseOne(t, "good.example\n"+tc.line+"\n")
			if err != nil || st.Malformed != 1 || len(ws) != 1 || ws[0].Kind != Malformed || ws[0].Line != 2 || !strings.Contains(ws[0].Reason, tc.reason) {
				t.Errorf("%q after a rule: stats %+v warnings %v err %v", tc.line, st, ws, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.line, err)
			continue
		}
		switch tc.class {
		case rule:
			if st.Rules != 1 || st.Malformed != 0 || st.Unsupported != 0 {
				t.Errorf("%q: stats %+v, want one rule", tc.line, st)
			}
			if strings.Contains(tc.line, "bad_name") {
				if len(ws) != 1 || ws[0].Token != "bad_name!.org" || ws[0].Kind != Malformed {
					t.Errorf("%q: warnings %v, want one for bad_name!.org", tc.line, ws)
				}
			} else if len(ws) != 0 {
				t.Errorf("%q: warnings %v", tc.line, ws)
			}
		case comment:
			if st.Comments != 1 || st.Rules != 0 || len(ws) != 0 {
				t.Errorf("%q: stats %+v warnings %v, want a comment", tc.line, st, ws)
			}
		case ignored:
			if st.Ignored == 0 || st.Rules != 0 || len(ws) != 0 || b.names != 0 {
				t.Errorf("%q: stats %+v warnings %v, want ignored", tc.line, st, ws)
			}
		case unsupported:
			if st.Unsupported != 1 || st.Rules != 0 || len(ws) != 1 || ws[0].Kind != Unsupported ||
				!strings.Contains(ws[0].Reason, tc.reason) || !strings.Contains(ws[0].Reason, "unsupported") && !strings.Contains(ws[0].Reason, "too slow") || ws[0].Line != 1 {
				t.Errorf("%q: stats %+v warnings %v, want unsupported %q", tc.line, st, ws, tc.reason)
			}
		}
	}
}

func TestNormalizeName(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"Example.ORG", "example.org"},
		{"example.org.", "example.org"},
		{"a", "a"},
		{"_srv._tcp.x-y.example", "_srv._tcp.x-y.example"},
		{"xn--d1acpjx3f.xn--p1ai", "xn--d1acpjx3f.xn--p1ai"},
		{strings.Repeat("a", 63), strings.Repeat("a", 63)},
		{strings.Repeat("abcdefgh.", 28) + "a", strings.Repeat("abcdefgh.", 28) + "a"}, // 253
		{"", ""}, {".", ""}, {"example.org..", ""}, {".example.org", ""},
		{strings.Repeat("a", 64), ""}, {strings.Repeat("abcdefgh.", 28) + "ab", ""},
		{"a b", ""}, {"a*b", ""}, {"a/b", ""}, {"a\x00b", ""},
		{"ä.org", "xn--4ca.org"}, {"Пример.РФ", "xn--e1afmkfd.xn--p1ai"}, {"bücher.example", "xn--bcher-kva.example"},
		{"例え.テスト", "xn--r8jz45g.xn--zckzah"}, {"münchen。de", "xn--mnchen-3ya.de"}, {"\xff.org", ""},
	} {
		got, reason, _ := normalizeName(nil, []byte(tc.in))
		if string(got) != tc.want || (reason == "") != (tc.want != "") {
			t.Errorf("normalizeName(%q) = %q, %q; want %q", tc.in, got, reason, tc.want)
		}
	}
}

func TestParseLineEnds(t *testing.T) {
	b, st, ws, err := parseOne(t, "\xef\xbb\xbf||a.example^\r\n! c\r\n0.0.0.0 b.example\r\nc.example")
	if err != nil || st.Rules != 3 || st.Lines != 3+1 || len(ws) != 0 {
		t.Fatalf("stats %+v warnings %v err %v", st, ws, err)
	}
	s := b.Build()
	for _, n := range []string{"a.example", "b.example", "c.example"} {
		if s.Decide([]byte(n), 1).Action != Block {
			t.Errorf("%s not blocked", n)
		}
	}
	if src, _ := s.Rule(s.Decide([]byte("a.example"), 1).Rule); src.Text != "||a.example^" || src.Line != 1 {
		t.Errorf("rule 1 text %q", src.Text)
	}
}

func TestLongLine(t *testing.T) {
	for _, n := range []int{MaxLineLen + 1, MaxLineLen + 2, 3 * MaxLineLen, 100_000} {
		long := "||" + strings.Repeat("a", n-2)
		text := "one.example\n" + long + "\ntwo.example\n"
		b, st, ws, err := parseOne(t, text)
		if err != nil || st.Rules != 2 || st.Malformed != 1 || st.Lines != 3 || len(ws) != 1 || ws[0].Line != 2 || !strings.Contains(ws[0].Reason, "longer than") {
			t.Errorf("len %d: stats %+v warnings %v err %v", n, st, ws, err)
			continue
		}
		if len(ws[0].Token) > 100 {
			t.Errorf("len %d: warning token not shortened (%d bytes)", n, len(ws[0].Token))
		}
		s := b.Build()
		if s.Decide([]byte("two.example"), 1).Action != Block {
			t.Errorf("len %d: line after the long one lost", n)
		}
	}
	// Exactly MaxLineLen bytes, with CR LF, is read as a line.
	okLine := "0.0.0.0 ok.example" + strings.Repeat(" ", MaxLineLen-len("0.0.0.0 ok.example")-2) + "#c"
	if _, st, ws, err := parseOne(t, okLine+"\r\n"); err != nil || st.Rules != 1 || len(ws) != 0 {
		t.Errorf("line of MaxLineLen: stats %+v warnings %v err %v", st, ws, err)
	}
}

// TestNotAList: HTML, binary and mostly-garbage inputs are errors and add
// nothing, while lists with many unsupported rules are fine.
func TestNotAList(t *testing.T) {
	html := "<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head>\n<body><h1>Not Found</h1></body></html>\n"
	htmlLate := "\n\n# comment\n<html>\n<body>\nexample.org\n</body>\n</html>\n"
	binary := "||a.example^\n\x00\x01\x02\x03\n"
	utf16 := "\xff\xfe|\x00|\x00a\x00.\x00e\x00x\x00^\x00\n\x00"
	var garbage strings.Builder
	garbage.WriteString("||a.example^\n")
	for range 5 {
		garbage.WriteString("this is not a rule\n")
	}
	var garbageNoNewline bytes.Buffer
	for range 3 {
		garbageNoNewline.WriteString(strings.Repeat("\x7f\x01junk", 2000))
		garbageNoNewline.WriteString("\n")
	}
	bigGarbage := strings.Repeat("lorem ipsum dolor\n", 2*earlyRejectLines)
	for name, in := range map[string]string{
		"html": html, "html after comments": htmlLate, "binary": binary, "utf16": utf16,
		"majority malformed": garbage.String(), "long binary lines": garbageNoNewline.String(), "big garbage": bigGarbage,
	} {
		b := NewBuilder()
		_, _ = b.ParseList(strings.NewReader("||kept.example^\n"), "first", nil)
		warned := 0
		_, err := b.ParseList(strings.NewReader(in), name, func(ListWarning) { warned++ })
		if !errors.Is(err, ErrNotAList) || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: err = %v, want ErrNotAList naming the list", name, err)
		}
		if warned != 0 {
			t.Errorf("%s: %d warnings delivered for a rejected file", name, warned)
		}
		s := b.Build()
		if s.Len() != 1 || len(s.lists) != 1 || s.Decide([]byte("a.example"), 1).Action != Forward || s.Decide([]byte("kept.example"), 1).Action != Block {
			t.Errorf("%s: rejected list changed the builder (Len %d, lists %v)", name, s.Len(), s.lists)
		}
	}

	// Unsupported lines are not evidence against a list.
	var adblock strings.Builder
	adblock.WriteString("! Title: browser list\n||a.example^\n")
	for range 50 {
		adblock.WriteString("example.org##.banner\n||x.example^$third-party\n||x.example/path\n")
	}
	adblock.WriteString("bad line here\n")
	st, err := NewBuilder().ParseList(strings.NewReader(adblock.String()), "adblock", nil)
	if err != nil || st.Rules != 1 || st.Unsupported != 150 || st.Malformed != 1 {
		t.Errorf("adblock list: stats %+v err %v", st, err)
	}
	// A file of comments only is an empty list, not an error.
	if st, err := NewBuilder().ParseList(strings.NewReader("# nothing yet\n\n"), "empty", nil); err != nil || st.Rules != 0 {
		t.Errorf("comments only: %+v %v", st, err)
	}
}

func TestReadErrorAddsNothing(t *testing.T) {
	b := NewBuilder()
	r := io.MultiReader(strings.NewReader("||a.example^\n||b.example^\n"), iotest.ErrReader(errors.New("disk on fire")))
	_, err := b.ParseList(r, "broken", nil)
	if err == nil || !strings.Contains(err.Error(), "disk on fire") || !strings.Contains(err.Error(), "broken") {
		t.Fatalf("err = %v", err)
	}
	if s := b.Build(); s.Len() != 0 {
		t.Fatalf("failed list added %d rules", s.Len())
	}
}

func TestWarningsAndStats(t *testing.T) {
	text := "! hdr\n||a.example^\n||a.example^\na.example\n0.0.0.0 b.example localhost\n192.0.2.1 c.home\n2001:db8::1 c.home\n192.0.2.1 c.home\n@@||ok.a.example^\n||x.example^$ctag=kids\n"
	_, st, ws, err := parseOne(t, text)
	if err != nil {
		t.Fatal(err)
	}
	want := ListStats{Lines: 10, Comments: 1, Rules: 5, Blocks: 2, Exceptions: 1, Answers: 2, Duplicates: 3, Ignored: 1, Unsupported: 1}
	if st != want {
		t.Errorf("stats\n got %+v\nwant %+v", st, want)
	}
	if len(ws) != 1 {
		t.Fatalf("warnings %v", ws)
	}
	w := ws[0]
	if w.List != "t.txt" || w.Line != 10 || w.Token != "||x.example^$ctag=kids" || w.Kind != Unsupported {
		t.Errorf("warning %+v", w)
	}
	if got := w.String(); got != `t.txt:10: modifier $ctag unsupported (client tags): "||x.example^$ctag=kids"` {
		t.Errorf("String() = %s", got)
	}
	// warn may be nil.
	if _, err := NewBuilder().ParseList(strings.NewReader(text), "nil", nil); err != nil {
		t.Error(err)
	}
}

func TestWarningsCapped(t *testing.T) {
	var sb strings.Builder
	for range maxWarnings + 10 {
		sb.WriteString("||ok.example^\n||x.example^$ctag=a\n")
	}
	_, st, ws, err := parseOne(t, sb.String())
	if err != nil || st.Unsupported != maxWarnings+10 || len(ws) != maxWarnings+1 || !strings.Contains(ws[maxWarnings].Reason, "10 more warnings") {
		t.Fatalf("stats %+v, %d warnings, err %v", st, len(ws), err)
	}
}

func TestBuildTwiceAndIncremental(t *testing.T) {
	b := NewBuilder()
	_, _ = b.ParseList(strings.NewReader("||a.example^\n"), "one", nil)
	s1 := b.Build()
	_, _ = b.ParseList(strings.NewReader("@@||a.example^\n||b.example^\n"), "two", nil)
	s2 := b.Build()
	if s1.Len() != 1 || s1.Decide([]byte("a.example"), 1).Action != Block || s1.Decide([]byte("b.example"), 1).Action != Forward {
		t.Error("first Set changed by later ParseList")
	}
	if s2.Len() != 3 || s2.Decide([]byte("a.example"), 1).Action != Forward || s2.Decide([]byte("b.example"), 1).Action != Block {
		t.Error("second Set wrong")
	}
}

func TestLoadFiles(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.txt")
	hosts := filepath.Join(dir, "hosts")
	html := filepath.Join(dir, "page.html")
	must(t, os.WriteFile(good, []byte("||a.example^\n||x.example^$ctag=a\n"), 0o644))
	must(t, os.WriteFile(hosts, []byte("0.0.0.0 b.example\n"), 0o644))
	must(t, os.WriteFile(html, []byte("<html>\n"), 0o644))

	s, ws, err := LoadFiles(good, hosts)
	if err != nil || s.Len() != 2 || len(ws) != 1 || ws[0].List != good {
		t.Fatalf("LoadFiles: %v rules, warnings %v, err %v", s.Len(), ws, err)
	}
	if src, _ := s.Rule(s.Decide([]byte("b.example"), 1).Rule); src.List != hosts || src.Line != 1 {
		t.Errorf("source %+v", src)
	}
	missing := filepath.Join(dir, "missing.txt")
	if _, _, err := LoadFiles(good, missing); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing file: %v", err)
	}
	if _, _, err := LoadFiles(html); !errors.Is(err, ErrNotAList) || !strings.Contains(err.Error(), html) {
		t.Errorf("html file: %v", err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
