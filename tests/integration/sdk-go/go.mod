// Paddle's Go SDK against `ctkn serve` (tests/integration/test_api_sdk_go.py).
// v4.1.0 is the first and newest release with the client tokens API.
module ctkn/sdk-go

go 1.23.0

require (
	github.com/PaddleHQ/paddle-go-sdk/v4 v4.1.0
	github.com/hashicorp/go-cleanhttp v0.5.2
)

require (
	github.com/ggicci/httpin v0.20.1 // indirect
	github.com/ggicci/owl v0.8.2 // indirect
)
