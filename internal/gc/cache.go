package gc

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	"github.com/distribution/distribution/v3"
	"github.com/distribution/distribution/v3/configuration"
	rediscache "github.com/distribution/distribution/v3/registry/storage/cache/redis"
	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"
)

// RedisCache returns a client of the Redis server config's registries keep
// their blob descriptors in, or nil when config uses no Redis descriptor
// cache (none, or the in-memory one inside each replica).
func RedisCache(config *configuration.Configuration) (redis.UniversalClient, error) {
	cc, ok := config.Storage["cache"]
	if !ok {
		return nil, nil
	}
	v, ok := cc["blobdescriptor"]
	if !ok {
		v = cc["layerinfo"] // the older name the registry still accepts
	}
	if v != "redis" {
		return nil, nil
	}
	o := config.Redis.Options
	if len(o.Addrs) == 0 {
		return nil, fmt.Errorf("configuration error: storage.cache.blobdescriptor is redis but redis.addrs is empty")
	}
	opts := &redis.UniversalOptions{
		Addrs: o.Addrs, ClientName: o.ClientName, DB: o.DB, Protocol: o.Protocol,
		Username: o.Username, Password: o.Password,
		SentinelUsername: o.SentinelUsername, SentinelPassword: o.SentinelPassword,
		MaxRetries: o.MaxRetries, MinRetryBackoff: o.MinRetryBackoff, MaxRetryBackoff: o.MaxRetryBackoff,
		DialTimeout: o.DialTimeout, ReadTimeout: o.ReadTimeout, WriteTimeout: o.WriteTimeout,
		ContextTimeoutEnabled: o.ContextTimeoutEnabled, PoolFIFO: o.PoolFIFO, PoolSize: o.PoolSize,
		PoolTimeout: o.PoolTimeout, MinIdleConns: o.MinIdleConns, MaxIdleConns: o.MaxIdleConns,
		MaxActiveConns: o.MaxActiveConns, ConnMaxIdleTime: o.ConnMaxIdleTime, ConnMaxLifetime: o.ConnMaxLifetime,
		MaxRedirects: o.MaxRedirects, ReadOnly: o.ReadOnly, RouteByLatency: o.RouteByLatency,
		RouteRandomly: o.RouteRandomly, MasterName: o.MasterName, DisableIdentity: o.DisableIdentity,
		IdentitySuffix: o.IdentitySuffix, UnstableResp3: o.UnstableResp3,
	}
	t := config.Redis.TLS
	if t.Certificate != "" || t.Key != "" || len(t.RootCAs) != 0 {
		// The registry's own reading of redis.tls (registry/handlers/app.go).
		tlsConf := &tls.Config{}
		if t.Certificate != "" && t.Key != "" {
			cert, err := tls.LoadX509KeyPair(t.Certificate, t.Key)
			if err != nil {
				return nil, fmt.Errorf("configuration error: redis.tls: %w", err)
			}
			tlsConf.Certificates = []tls.Certificate{cert}
		}
		if len(t.RootCAs) != 0 {
			pool := x509.NewCertPool()
			for _, ca := range t.RootCAs {
				pem, err := os.ReadFile(ca)
				if err != nil {
					return nil, fmt.Errorf("configuration error: redis.tls.rootcas: %w", err)
				}
				if !pool.AppendCertsFromPEM(pem) {
					return nil, fmt.Errorf("configuration error: redis.tls.rootcas: no certificate in %s", ca)
				}
			}
			tlsConf.RootCAs = pool
		}
		opts.TLSConfig = tlsConf
	}
	return redis.NewUniversalClient(opts), nil
}

// RedisEvictor returns an Options.Evict that makes distribution's Redis
// blob-descriptor cache forget what a sweep deleted, with distribution's
// own cache code: the global descriptor of each deleted blob, and each
// repository's descriptor and membership of every digest whose link there
// no longer leads to a blob. Without it a pull after the collection is
// answered from the cache for a blob that is gone, and fails with "blob
// unknown" at its first read.
func RedisEvictor(client redis.UniversalClient, concurrency int) func(context.Context, Deleted) error {
	provider := rediscache.NewRedisBlobDescriptorCacheProvider(client)
	return func(ctx context.Context, deleted Deleted) error {
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(max(concurrency, 1))
		for repo, dgsts := range deleted.Links {
			scoped, err := provider.RepositoryScoped(repo)
			if err != nil {
				return err
			}
			for _, d := range dgsts {
				g.Go(func() error { return ignoreUnknown(scoped.Clear(gctx, d)) })
			}
		}
		for _, d := range deleted.Blobs {
			g.Go(func() error { return ignoreUnknown(provider.Clear(gctx, d)) })
		}
		return g.Wait()
	}
}

// ignoreUnknown drops the cache's "not cached" answer: nothing to forget.
func ignoreUnknown(err error) error {
	if errors.Is(err, distribution.ErrBlobUnknown) {
		return nil
	}
	return err
}
