package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthgrpc "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	"github.com/ferry-dev/ferry/agent/audit"
	"github.com/ferry-dev/ferry/agent/ftpserver"
	"github.com/ferry-dev/ferry/agent/metrics"
	"github.com/ferry-dev/ferry/agent/security"
	"github.com/ferry-dev/ferry/agent/transfer"
	ferryv1 "github.com/ferry-dev/ferry/proto/ferry/v1"
)

// ops is what operators watch an agent with: the gRPC health service, the Prometheus metrics,
// the audit log.
type ops struct {
	health     *health.Server
	stopping   chan struct{} // closed when health watches must end (shutdown)
	stopOnce   sync.Once
	metrics    *metrics.Metrics
	metricsLis net.Listener
	metricsSrv *http.Server
	audit      *audit.Log
	healthMu   sync.Mutex
	serving    bool  // Run started and Close did not
	storeErr   error // the last job store write failed
}

// openOps opens the audit log, creates the metrics and the health service (NOT_SERVING until
// Run) and binds the metrics listener.
func (d *Daemon) openOps() error {
	d.stopping = make(chan struct{})
	d.health = health.NewServer()
	d.health.SetServingStatus("", healthgrpc.HealthCheckResponse_NOT_SERVING)
	d.health.SetServingStatus(ferryv1.AgentService_ServiceDesc.ServiceName, healthgrpc.HealthCheckResponse_NOT_SERVING)
	if d.cfg.AuditLog != "" {
		var err error
		if d.audit, err = audit.Open(d.cfg.AuditLog); err != nil {
			return err
		}
	}
	d.metrics = metrics.New(func() int {
		if d.ftp == nil {
			return 0
		}
		return d.ftp.Sessions()
	})
	if d.cfg.MetricsListen != "" {
		lis, err := net.Listen("tcp", d.cfg.MetricsListen)
		if err != nil {
			return fmt.Errorf("metrics-listen: %w", err)
		}
		d.metricsLis = lis
		mux := http.NewServeMux()
		mux.Handle("/metrics", d.metrics.Handler())
		d.metricsSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	}
	return nil
}

// observers is the engine's Observer: metrics, audit log, then Config.Observers.
func (d *Daemon) observers() transfer.Observers {
	obs := transfer.Observers{d.metrics}
	if d.audit != nil {
		obs = append(obs, d.audit)
	}
	return append(obs, d.cfg.Observers...)
}

// ftpEvents is the FTP server's EventSink: metrics, audit log, then Config.FTPEvents.
func (d *Daemon) ftpEvents() ftpserver.EventSinks {
	sinks := ftpserver.EventSinks{d.metrics}
	if d.audit != nil {
		sinks = append(sinks, d.audit)
	}
	return append(sinks, d.cfg.FTPEvents...)
}

// interceptors chains the API's interceptors: the audit log's outer one (records refused
// calls), the authenticator, the audit log's inner one (records each call with its caller).
func (d *Daemon) interceptors(auth *security.Authenticator) []grpc.ServerOption {
	if d.audit == nil {
		return []grpc.ServerOption{grpc.ChainUnaryInterceptor(auth.Unary()), grpc.ChainStreamInterceptor(auth.Stream())}
	}
	ou, iu, os, is := d.audit.Interceptors()
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(ou, auth.Unary(), iu),
		grpc.ChainStreamInterceptor(os, auth.Stream(), is),
	}
}

// registerOps adds the health service and server reflection to the gRPC server. Who may call
// them is in agent/security (health: anyone, for load balancers and probes; reflection: viewer).
func (d *Daemon) registerOps() {
	healthgrpc.RegisterHealthServer(d.grpc, &healthService{Server: d.health, stopping: d.stopping})
	reflection.Register(d.grpc)
}

// setHealth records whether the agent serves (from Run until Close, unless a server failed)
// and publishes SERVING or NOT_SERVING; why says why it does not serve, for the log.
func (d *Daemon) setHealth(up bool, why string, err error) {
	d.healthMu.Lock()
	defer d.healthMu.Unlock()
	d.serving = up
	if !up && why != "" {
		d.log.Warn("health: NOT_SERVING", "why", why, "err", err)
	}
	d.publishHealthLocked()
	if why == whyShutdown {
		d.health.Shutdown() // NOT_SERVING for good: later changes are ignored
	}
}

const whyShutdown = "shutting down"

// publishHealthLocked: SERVING while the agent serves and its job store writes.
func (d *Daemon) publishHealthLocked() {
	status := healthgrpc.HealthCheckResponse_NOT_SERVING
	if d.serving && d.storeErr == nil {
		status = healthgrpc.HealthCheckResponse_SERVING
	}
	d.health.SetServingStatus("", status)
	d.health.SetServingStatus(ferryv1.AgentService_ServiceDesc.ServiceName, status)
}

// storeFailed is told of each job store write: a failure turns the agent NOT_SERVING until a
// write succeeds again.
func (d *Daemon) storeFailed(err error) {
	d.healthMu.Lock()
	defer d.healthMu.Unlock()
	if (err == nil) == (d.storeErr == nil) {
		d.storeErr = err
		return
	}
	d.storeErr = err
	if err != nil {
		d.log.Error("health: NOT_SERVING", "why", "the job store fails to write", "err", err)
	} else {
		d.log.Info("health: the job store writes again")
	}
	d.publishHealthLocked()
}

// endHealthWatches ends the health Watch streams, which would otherwise hold the gRPC
// server's graceful stop (they already got NOT_SERVING).
func (d *Daemon) endHealthWatches() {
	d.stopOnce.Do(func() { close(d.stopping) })
}

func (d *Daemon) serveMetrics(errc chan<- error) {
	if d.metricsSrv == nil {
		return
	}
	go func() {
		if err := d.metricsSrv.Serve(d.metricsLis); !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("metrics: %w", err)
		}
	}()
}

func (d *Daemon) closeMetrics() {
	if d.metricsSrv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := d.metricsSrv.Shutdown(ctx); err != nil {
			d.metricsSrv.Close()
		}
	} else if d.metricsLis != nil {
		d.metricsLis.Close()
	}
}

// healthService is grpc's health server whose Watch streams end at shutdown.
type healthService struct {
	*health.Server
	stopping <-chan struct{}
}

func (h *healthService) Watch(req *healthgrpc.HealthCheckRequest, stream healthgrpc.Health_WatchServer) error {
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	go func() {
		select {
		case <-h.stopping:
			cancel()
		case <-ctx.Done():
		}
	}()
	return h.Server.Watch(req, &watchStream{Health_WatchServer: stream, ctx: ctx})
}

type watchStream struct {
	healthgrpc.Health_WatchServer
	ctx context.Context
}

func (w *watchStream) Context() context.Context { return w.ctx }

// healthStore tells the daemon whether job store writes succeed.
type healthStore struct {
	transfer.Store
	d *Daemon
}

func (s *healthStore) Put(id string, rec []byte) error {
	err := s.Store.Put(id, rec)
	s.d.storeFailed(err)
	return err
}
