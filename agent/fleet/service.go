package fleet

import (
	"context"
	"errors"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ferry-dev/ferry/agent/security"
	ferryv1 "github.com/ferry-dev/ferry/proto/ferry/v1"
)

// Service is the FleetService gRPC API over a Coordinator.
type Service struct {
	ferryv1.UnimplementedFleetServiceServer
	c *Coordinator
	// WatchInterval is the least time between two snapshots of a watch (default 250ms).
	WatchInterval time.Duration
}

// NewService returns the API of c.
func NewService(c *Coordinator) *Service {
	return &Service{c: c, WatchInterval: 250 * time.Millisecond}
}

func toStatus(err error) error {
	var inv *InvalidError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &inv):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, ErrNotFound):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	return status.Error(codes.Unavailable, err.Error())
}

func (s *Service) StartFleetJob(ctx context.Context, req *ferryv1.StartFleetJobRequest) (*ferryv1.StartFleetJobResponse, error) {
	j, err := s.c.Start(req, security.FromContext(ctx).Name)
	if err != nil {
		return nil, toStatus(err)
	}
	return &ferryv1.StartFleetJobResponse{Job: j}, nil
}

func (s *Service) GetFleetJob(_ context.Context, req *ferryv1.GetFleetJobRequest) (*ferryv1.GetFleetJobResponse, error) {
	j, err := s.c.Get(req.GetId())
	if err != nil {
		return nil, toStatus(err)
	}
	return &ferryv1.GetFleetJobResponse{Job: j}, nil
}

func (s *Service) ListFleetJobs(context.Context, *ferryv1.ListFleetJobsRequest) (*ferryv1.ListFleetJobsResponse, error) {
	return &ferryv1.ListFleetJobsResponse{Jobs: s.c.List()}, nil
}

func (s *Service) WatchFleetJob(req *ferryv1.WatchFleetJobRequest, stream ferryv1.FleetService_WatchFleetJobServer) error {
	err := s.c.Watch(stream.Context(), req.GetId(), s.WatchInterval, func(j *ferryv1.FleetJob) error {
		return stream.Send(&ferryv1.WatchFleetJobResponse{Job: j})
	})
	if err != nil && stream.Context().Err() == nil {
		return toStatus(err)
	}
	return nil
}

func (s *Service) CancelFleetJob(_ context.Context, req *ferryv1.CancelFleetJobRequest) (*ferryv1.CancelFleetJobResponse, error) {
	j, err := s.c.Cancel(req.GetId(), 10*time.Second)
	if err != nil {
		return nil, toStatus(err)
	}
	return &ferryv1.CancelFleetJobResponse{Job: j}, nil
}
