// Package kube is the Kubernetes source of desired state. It watches
// Services, EndpointSlices and Nodes, decides which Service addresses this
// node serves and announces, and (when elected) allocates LoadBalancer
// addresses from the configured pools. It never touches the kernel or BGP:
// the agent reads its snapshot like any other source's.
package kube

import (
	_ "k8s.io/client-go/informers"
	_ "k8s.io/client-go/kubernetes"
	_ "k8s.io/client-go/tools/leaderelection"
	_ "k8s.io/client-go/tools/record"
)
