package pluginhost

import (
	"slices"
	"strings"
	"testing"
)

func TestParseSpec(t *testing.T) {
	for in, want := range map[string][]string{
		"/p/auth -file /etc/x":                        {"/p/auth", "-file", "/etc/x"},
		`  /p/hook-exec -- sh -c 'echo "$X"; exit 1'`: {"/p/hook-exec", "--", "sh", "-c", `echo "$X"; exit 1`},
		`/p/a "two words" b\ c "q\"x"`:                {"/p/a", "two words", "b c", `q"x`},
		`'/opt/my plugins/a'`:                         {"/opt/my plugins/a"},
	} {
		s, err := ParseSpec(in)
		if err != nil {
			t.Errorf("%q: %v", in, err)
			continue
		}
		if got := append([]string{s.Path}, s.Args...); !slices.Equal(got, want) {
			t.Errorf("%q: got %q, want %q", in, got, want)
		}
	}
	for _, bad := range []string{"", "   ", `/p/a 'open`, `/p/a "open`} {
		if _, err := ParseSpec(bad); err == nil {
			t.Errorf("%q: accepted", bad)
		}
	}
	if p, v, err := ParsePathValue("/p/a=b=closed"); err != nil || p != "/p/a=b" || v != "closed" {
		t.Errorf("ParsePathValue: %q %q %v", p, v, err)
	}
	if _, _, err := ParsePathValue("closed"); err == nil {
		t.Error("ParsePathValue accepted no '='")
	}
	if err := CheckSHA256(strings.Repeat("a", 64)); err != nil {
		t.Error(err)
	}
	if err := CheckSHA256("abc"); err == nil {
		t.Error("CheckSHA256 accepted 3 digits")
	}
	if _, err := ParseFail("sometimes"); err == nil {
		t.Error("ParseFail accepted sometimes")
	}
}
