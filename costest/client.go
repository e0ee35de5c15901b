package costest

import (
	"net/http"
	"net/url"
	"sync"

	cos "github.com/tencentyun/cos-go-sdk-v5"
)

// This is the one file of costest that imports the COS SDK: Server.Client
// hands tests a client the way httptest.Server.Client does.

// serverClient is the client Server.Client returns, built once.
type serverClient struct {
	once      sync.Once
	client    *cos.Client
	transport *http.Transport
}

// Client returns an SDK client configured for the server: its BucketURL is
// the default bucket (URL), its ServiceURL the service endpoint
// (ServiceURL), and it signs every request with the first credential,
// sending its session token when it has one. Every call returns the same
// client; Close closes its idle connections.
func (s *Server) Client() *cos.Client {
	s.client.once.Do(func() {
		bucketURL, _ := url.Parse(s.URL)
		serviceURL, _ := url.Parse(s.ServiceURL)
		s.client.transport = &http.Transport{MaxIdleConnsPerHost: 64}
		s.client.client = cos.NewClient(&cos.BaseURL{BucketURL: bucketURL, ServiceURL: serviceURL}, &http.Client{
			Transport: &cos.AuthorizationTransport{
				SecretID: s.SecretID, SecretKey: s.SecretKey, SessionToken: s.sessionToken,
				Transport: s.client.transport,
			},
		})
	})
	return s.client.client
}

// closeClient closes the idle connections of the client Client returned.
func (s *Server) closeClient() {
	if s.client.transport != nil {
		s.client.transport.CloseIdleConnections()
	}
}
