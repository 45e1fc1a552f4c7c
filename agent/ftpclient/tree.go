package ftpclient

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/ferry-dev/ferry/agent/treestream"
)

// HasTree reports whether the server offers the tree stream (a Ferry agent: XTREE in FEAT).
func (c *Client) HasTree() bool {
	_, ok := c.features[treestream.Feature]
	return ok
}

// HasTreeSel reports whether the agent takes a selection before a tree stream (XTREE SEL: "SEL"
// after XTREE on its FEAT line).
func (c *Client) HasTreeSel() bool {
	return c.HasTree() && slices.Contains(strings.Fields(strings.ToUpper(c.features[treestream.Feature])), treestream.FeatureSel)
}

// TreeSel sends the agent the files (relative to dir) that the next TreeRetr of dir is to
// send, instead of the whole tree (XTREE SEL). It wraps ErrUnsupported when the agent does not
// offer it.
func (c *Client) TreeSel(ctx context.Context, dir string, rels []string) error {
	if !c.HasTreeSel() {
		return fmt.Errorf("ftp %s SEL: %w", treestream.Feature, ErrUnsupported)
	}
	t, err := c.startDataMode(ctx, treestream.Feature+" SEL", dir, 0, &pipeline{})
	if err != nil {
		return err
	}
	t.upload = true
	w := &writer{t}
	err = treestream.SendSelection(w, rels)
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	return err
}

// TreeRetr asks a Ferry agent for the whole tree under dir as one stream over one data
// connection (XTREE RETR; the format is agent/treestream's). Close as for Retr. It wraps
// ErrUnsupported when the server does not offer it.
func (c *Client) TreeRetr(ctx context.Context, dir string) (io.ReadCloser, error) {
	if !c.HasTree() {
		return nil, fmt.Errorf("ftp %s RETR: %w", treestream.Feature, ErrUnsupported)
	}
	t, err := c.startDataMode(ctx, treestream.Feature+" RETR", dir, 0, &pipeline{})
	if err != nil {
		return nil, err
	}
	return &reader{t}, nil
}

// TreeList asks a Ferry agent for the listing of the whole tree under dir over one data
// connection (XTREE LIST; read it with treestream.ReadList). Close as for Retr.
func (c *Client) TreeList(ctx context.Context, dir string) (io.ReadCloser, error) {
	if !c.HasTree() {
		return nil, fmt.Errorf("ftp %s LIST: %w", treestream.Feature, ErrUnsupported)
	}
	t, err := c.startDataMode(ctx, treestream.Feature+" LIST", dir, 0, &pipeline{})
	if err != nil {
		return nil, err
	}
	return &reader{t}, nil
}

// TreeStor sends a tree stream to a Ferry agent, which writes it into dir (XTREE STOR). Close
// returns the agent's verdict on the whole stream (each file's SHA-256 checked, every file
// published) as for Stor.
func (c *Client) TreeStor(ctx context.Context, dir string) (io.WriteCloser, error) {
	if !c.HasTree() {
		return nil, fmt.Errorf("ftp %s STOR: %w", treestream.Feature, ErrUnsupported)
	}
	t, err := c.startDataMode(ctx, treestream.Feature+" STOR", dir, 0, &pipeline{})
	if err != nil {
		return nil, err
	}
	t.upload = true
	return &writer{t}, nil
}

// StatTree is Stat for a source that may be a tree. To a Ferry agent MLST, EPSV and XTREE RETR
// go in one flight: when path is a directory its stream is then under way (rc, closed as for
// TreeRetr) without round trips of its own; when it is a file the agent refuses the stream and
// rc is nil, the session going on as after Stat. Other servers, and active mode, get Stat.
func (c *Client) StatTree(ctx context.Context, p string) (e Entry, rc io.ReadCloser, err error) {
	if _, ok := c.features["MLST"]; !ok || !c.HasTree() || c.cfg.Mode != ModePassive {
		e, err = c.Stat(ctx, p)
		return e, nil, err
	}
	if err := checkArg(p); err != nil {
		return Entry{}, nil, fmt.Errorf("ftp MLST %s: argument %w", p, err)
	}
	pl := &pipeline{before: []string{"MLST " + p}}
	t, terr := c.startDataMode(ctx, treestream.Feature+" RETR", p, 0, pl)
	if t != nil {
		rc = &reader{t}
	}
	if len(pl.replies) == 0 {
		return Entry{}, nil, terr // the session failed before MLST's reply
	}
	if r := pl.replies[0]; r.Code != 250 {
		err = fmt.Errorf("ftp MLST %s: %w", p, c.replyErr(r))
	} else {
		e, err = mlstEntry(p, r)
	}
	switch {
	case err == nil && e.IsDir && terr == nil:
		return e, rc, nil
	case rc != nil:
		rc.Close() // not a tree after all: abort the stream
	}
	switch {
	case err != nil:
		return Entry{}, nil, err
	case e.IsDir || (terr != nil && !IsPermanent(terr)):
		return Entry{}, nil, terr // a directory the agent would not stream, or a broken session
	}
	return e, nil, nil
}
