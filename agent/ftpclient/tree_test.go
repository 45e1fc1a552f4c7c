package ftpclient

import (
	"errors"
	"testing"
	"time"
)

// TestTreeSelOffer: XTREE SEL is used only when FEAT offers it after XTREE; an agent that
// lists XTREE alone (older) gets no selection, and TreeSel says so.
func TestTreeSelOffer(t *testing.T) {
	for _, tc := range []struct {
		feat      string
		tree, sel bool
	}{
		{" XTREE", true, false},
		{" XTREE SEL", true, true},
		{" XTREE LIST SEL", true, true},
		{" SIZE", false, false},
	} {
		replies := loginReplies()
		replies["FEAT"] = []string{"211-Features:", " EPSV", tc.feat, "211 End"}
		s := startScripted(t, &scriptedServer{Replies: replies})
		c := dial(t, Config{Addr: s.Addr, User: "u", Password: "p"})
		if c.HasTree() != tc.tree || c.HasTreeSel() != tc.sel {
			t.Errorf("FEAT %q: tree %v sel %v; want %v %v", tc.feat, c.HasTree(), c.HasTreeSel(), tc.tree, tc.sel)
		}
		if !tc.sel {
			if err := c.TreeSel(testCtx(t, 5*time.Second), "d", []string{"x"}); !errors.Is(err, ErrUnsupported) {
				t.Errorf("FEAT %q: TreeSel: %v, want ErrUnsupported", tc.feat, err)
			}
		}
	}
}
