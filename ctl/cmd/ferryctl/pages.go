package main

import (
	"context"
	"fmt"

	"google.golang.org/grpc"

	ferryv1 "github.com/ferry-dev/ferry/proto/ferry/v1"
)

// maxListResponse is ferryctl's receive limit for one page of a list RPC. An agent sends pages
// of at most about 2 MiB; the headroom lets ferryctl read an older agent's unpaged answer.
const maxListResponse = 64 << 20

// pages calls a list RPC page after page (each under --timeout) until next_page_token is empty,
// and hands each response to add.
func pages[Req any, Resp interface{ GetNextPageToken() string }](ctx context.Context, a *app,
	rpc func(ferryv1.AgentServiceClient, context.Context, Req, ...grpc.CallOption) (Resp, error),
	req Req, setToken func(Req, string), add func(Resp)) error {
	c, err := a.api()
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	for {
		cctx, cancel := a.unary(ctx)
		resp, err := rpc(c, cctx, req, grpc.MaxCallRecvMsgSize(maxListResponse))
		cancel()
		if err != nil {
			return err
		}
		a.reached.Store(true)
		add(resp)
		next := resp.GetNextPageToken()
		if next == "" {
			return nil
		}
		if seen[next] {
			return fmt.Errorf("the agent sent the same page token twice: listing stopped")
		}
		seen[next] = true
		setToken(req, next)
	}
}

// listFiles is ListFiles with every page: one response holding all the entries.
func (a *app) listFiles(ctx context.Context, req *ferryv1.ListFilesRequest) (*ferryv1.ListFilesResponse, error) {
	all := &ferryv1.ListFilesResponse{}
	err := pages(ctx, a, ferryv1.AgentServiceClient.ListFiles, req,
		func(r *ferryv1.ListFilesRequest, t string) { r.PageToken = t },
		func(r *ferryv1.ListFilesResponse) { all.Entries = append(all.Entries, r.GetEntries()...) })
	return all, err
}

// listTransfers is ListTransfers with every page: one response holding all the transfers.
func (a *app) listTransfers(ctx context.Context, req *ferryv1.ListTransfersRequest) (*ferryv1.ListTransfersResponse, error) {
	all := &ferryv1.ListTransfersResponse{}
	err := pages(ctx, a, ferryv1.AgentServiceClient.ListTransfers, req,
		func(r *ferryv1.ListTransfersRequest, t string) { r.PageToken = t },
		func(r *ferryv1.ListTransfersResponse) { all.Transfers = append(all.Transfers, r.GetTransfers()...) })
	return all, err
}
