package ftpclient

import (
	"context"
	"fmt"
	"io"

	"github.com/ferry-dev/ferry/agent/treestream"
)

// HasTree reports whether the server offers the tree stream (a Ferry agent: XTREE in FEAT).
func (c *Client) HasTree() bool {
	_, ok := c.features[treestream.Feature]
	return ok
}

// TreeRetr asks a Ferry agent for the whole tree under dir as one stream over one data
// connection (XTREE RETR; the format is agent/treestream's). Close as for Retr. It wraps
// ErrUnsupported when the server does not offer it.
func (c *Client) TreeRetr(ctx context.Context, dir string) (io.ReadCloser, error) {
	if !c.HasTree() {
		return nil, fmt.Errorf("ftp %s RETR: %w", treestream.Feature, ErrUnsupported)
	}
	t, err := c.startDataMode(ctx, treestream.Feature+" RETR", dir, 0, true)
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
	t, err := c.startDataMode(ctx, treestream.Feature+" LIST", dir, 0, true)
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
	t, err := c.startDataMode(ctx, treestream.Feature+" STOR", dir, 0, true)
	if err != nil {
		return nil, err
	}
	t.upload = true
	return &writer{t}, nil
}
