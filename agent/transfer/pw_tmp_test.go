package transfer
import "testing"
func TestPwTmp(t *testing.T) {
	for _, s := range []string{"ftp://u:pa#ss@host/x", "ftp://u:p@ss:w0rd@host/x", "ftp://u:secret%zz@h/x", "ftp://u:sec ret@h/x", "ftp://u:se/cret@h/x", "ftp://u:s?cret@h:21/x"} {
		e, err := ParseEndpoint("source", s)
		t.Logf("%q -> %v | %q %q", s, err, e.String(), e.Password)
	}
}
