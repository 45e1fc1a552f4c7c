package testagent

import (
	"context"

	ferryv1 "github.com/ferry-dev/ferry/proto/ferry/v1"
)

// RunTransfer starts req on api and follows it (WatchTransfer) until the watch ends, at the
// transfer's end: it returns the last state seen (nil when none came). The caller checks it.
func RunTransfer(ctx context.Context, api ferryv1.AgentServiceClient, req *ferryv1.StartTransferRequest) (*ferryv1.Transfer, error) {
	resp, err := api.StartTransfer(ctx, req)
	if err != nil {
		return nil, err
	}
	stream, err := api.WatchTransfer(ctx, &ferryv1.WatchTransferRequest{Id: resp.GetTransfer().GetId()})
	if err != nil {
		return nil, err
	}
	var last *ferryv1.Transfer
	for {
		m, err := stream.Recv()
		if err != nil {
			return last, nil
		}
		last = m.GetTransfer()
	}
}
