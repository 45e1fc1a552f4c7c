package pluginhost

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// Spec is one plugin to load: --plugin 'PATH [ARGS…]', with its --plugin-sha256 and
// --plugin-fail settings.
type Spec struct {
	Path string
	Args []string
	// SHA256 (hex), when set, pins the binary: it is checked before every start.
	SHA256 string
	// FailOpen: while this hook plugin is down (or a check errors or times out), its checks
	// allow. The default is fail-closed: they deny. Auth plugins always fail closed.
	FailOpen bool
}

// ParseSpec splits "PATH [ARGS…]" like a shell would, without expansions: words are separated
// by blanks; single quotes keep everything, double quotes and backslashes as in sh.
func ParseSpec(s string) (Spec, error) {
	words, err := splitWords(s)
	if err != nil {
		return Spec{}, err
	}
	if len(words) == 0 {
		return Spec{}, errors.New("empty (want 'PATH [ARGS…]')")
	}
	return Spec{Path: words[0], Args: words[1:]}, nil
}

func splitWords(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		case c == '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, errors.New("unterminated single quote")
			}
			cur.WriteString(s[i+1 : i+1+j])
			i += j + 1
			inWord = true
		case c == '"':
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) && strings.IndexByte(`"\$`+"`", s[i+1]) >= 0 {
					i++
				}
				cur.WriteByte(s[i])
			}
			if i >= len(s) {
				return nil, errors.New("unterminated double quote")
			}
			inWord = true
		case c == '\\':
			if i+1 < len(s) {
				i++
				cur.WriteByte(s[i])
			}
			inWord = true
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

// ParsePathValue splits PATH=VALUE (for --plugin-sha256 and --plugin-fail); PATH is the
// plugin's first word as --plugin gave it. The last '=' separates them.
func ParsePathValue(s string) (path, value string, err error) {
	i := strings.LastIndexByte(s, '=')
	if i <= 0 || i == len(s)-1 {
		return "", "", fmt.Errorf("want PATH=VALUE, got %q", s)
	}
	return s[:i], s[i+1:], nil
}

// CheckSHA256 validates a pin: 64 hex digits.
func CheckSHA256(h string) error {
	b, err := hex.DecodeString(h)
	if err != nil || len(b) != 32 {
		return fmt.Errorf("want 64 hex digits (sha256sum PATH), got %q", h)
	}
	return nil
}

// ParseFail reads a --plugin-fail value: open or closed.
func ParseFail(v string) (failOpen bool, err error) {
	switch v {
	case "open", "fail-open":
		return true, nil
	case "closed", "fail-closed":
		return false, nil
	}
	return false, fmt.Errorf("want open or closed, got %q", v)
}
