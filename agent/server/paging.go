package server

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"sort"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/ferry-dev/ferry/agent/transfer"
	ferryv1 "github.com/ferry-dev/ferry/proto/ferry/v1"
)

// Paging of the list RPCs (AIP-158): page_size (0: the maximum; larger values are lowered to
// it), an opaque page_token naming where the previous page ended, next_page_token empty on the
// last page. A page also ends before its response would pass maxPageBytes, so any gRPC client
// with the default 4 MiB receive limit reads every page. Tokens are keyset cursors (the last
// name, or the last transfer's creation time and id) bound to the query by a hash: a token of
// another query is refused, and entries that come or go between pages do not shift them.
const (
	MaxFilesPageSize     = 10000
	MaxTransfersPageSize = 1000
	maxPageBytes         = 2 << 20
)

// pageToken is what a page token carries (base64url of its JSON).
type pageToken struct {
	Query string `json:"q"`           // hash of the query the token belongs to
	After string `json:"a,omitempty"` // ListFiles: last name returned
	Nanos int64  `json:"t,omitempty"` // ListTransfers: created_at of the last transfer returned
	ID    string `json:"i,omitempty"` // ListTransfers: its id
}

func queryHash(parts ...string) string {
	h := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return base64.RawURLEncoding.EncodeToString(h[:9])
}

func (t pageToken) encode() string {
	b, _ := json.Marshal(t)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeToken(s, query string) (pageToken, error) {
	var t pageToken
	if s == "" {
		return t, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err == nil {
		err = json.Unmarshal(b, &t)
	}
	if err != nil || t.Query != query {
		return pageToken{}, status.Error(codes.InvalidArgument, "page_token: is not a token of this listing (start again without it)")
	}
	return t, nil
}

func pageSize(n, max int32) (int, error) {
	switch {
	case n < 0:
		return 0, status.Errorf(codes.InvalidArgument, "page_size: %d is negative", n)
	case n == 0 || n > max:
		return int(max), nil
	}
	return int(n), nil
}

// entrySize is what one element adds to a response: its size, tag and length prefix.
func entrySize(m proto.Message) int { return proto.Size(m) + 8 }

func (s *Service) ListTransfers(_ context.Context, req *ferryv1.ListTransfersRequest) (*ferryv1.ListTransfersResponse, error) {
	size, err := pageSize(req.GetPageSize(), MaxTransfersPageSize)
	if err != nil {
		return nil, err
	}
	var states []transfer.State
	keys := make([]string, 0, len(req.GetStates()))
	for i, ps := range req.GetStates() {
		st, ok := stateFromProto(ps)
		if !ok {
			return nil, status.Errorf(codes.InvalidArgument, "states[%d]: unknown state %v", i, ps)
		}
		states = append(states, st)
		keys = append(keys, ps.String())
	}
	sort.Strings(keys)
	query := queryHash(append([]string{"transfers"}, keys...)...)
	tok, err := decodeToken(req.GetPageToken(), query)
	if err != nil {
		return nil, err
	}
	snaps := s.cfg.Manager.List(states...)
	// Newest first, ties by id: a total order, so a cursor names one place in it.
	sort.Slice(snaps, func(a, b int) bool {
		ta, tb := snaps[a].Created.UnixNano(), snaps[b].Created.UnixNano()
		if ta != tb {
			return ta > tb
		}
		return snaps[a].ID < snaps[b].ID
	})
	start := 0
	if req.GetPageToken() != "" {
		start = sort.Search(len(snaps), func(i int) bool {
			t := snaps[i].Created.UnixNano()
			return t < tok.Nanos || (t == tok.Nanos && snaps[i].ID > tok.ID)
		})
	}
	resp := &ferryv1.ListTransfersResponse{}
	bytes := 0
	for i := start; i < len(snaps); i++ {
		if len(resp.Transfers) == size {
			break
		}
		t := transferToProto(snaps[i])
		n := entrySize(t)
		if len(resp.Transfers) > 0 && bytes+n > maxPageBytes {
			break
		}
		resp.Transfers = append(resp.Transfers, t)
		bytes += n
	}
	if len(resp.Transfers) > 0 && start+len(resp.Transfers) < len(snaps) {
		last := snaps[start+len(resp.Transfers)-1]
		resp.NextPageToken = pageToken{Query: query, Nanos: last.Created.UnixNano(), ID: last.ID}.encode()
	}
	return resp, nil
}

func (s *Service) ListFiles(ctx context.Context, req *ferryv1.ListFilesRequest) (*ferryv1.ListFilesResponse, error) {
	mode, _, ok := modeFromProto(req.GetMode())
	if !ok {
		return nil, status.Errorf(codes.InvalidArgument, "mode: unknown value %d", req.GetMode())
	}
	size, err := pageSize(req.GetPageSize(), MaxFilesPageSize)
	if err != nil {
		return nil, err
	}
	query := queryHash("files", req.GetUrl())
	tok, err := decodeToken(req.GetPageToken(), query)
	if err != nil {
		return nil, err
	}
	entries, more, err := s.cfg.Manager.ListFilesPage(ctx, req.GetUrl(), mode, tok.After, size)
	if err != nil {
		return nil, toStatus(err)
	}
	resp := &ferryv1.ListFilesResponse{}
	bytes := 0
	for _, e := range entries {
		if len(e.Name) > MaxPathBytes {
			// No request could name it (paths are at most MaxPathBytes), and a token holding
			// it would pass MaxPageTokenBytes: a remote server's oddity is left out.
			continue
		}
		fe := &ferryv1.FileEntry{Name: e.Name, Size: e.Size, ModTime: ts(e.ModTime), IsDir: e.IsDir}
		n := entrySize(fe)
		if len(resp.Entries) > 0 && bytes+n > maxPageBytes {
			more = true
			break
		}
		resp.Entries = append(resp.Entries, fe)
		bytes += n
	}
	if more && len(resp.Entries) > 0 {
		resp.NextPageToken = pageToken{Query: query, After: resp.Entries[len(resp.Entries)-1].GetName()}.encode()
	}
	return resp, nil
}
