package config

import "go.yaml.in/yaml/v3"

// DataPlane configures the data planes that load balancers use.
type DataPlane struct {
	XDP XDP
}

// XDP configures the XDP data plane of load balancers in mode dsr.
type XDP struct {
	// Interfaces are where the XDP program is attached: those that
	// receive VIP traffic from the routers. Empty: the interface of the
	// route towards the first peer, found at run time.
	Interfaces []string
}

func (d *decoder) dataPlane(dp *DataPlane) field {
	return func(v *yaml.Node, path string) {
		d.object(v, path, map[string]field{
			"xdp": d.xdp(&dp.XDP),
		})
	}
}

func (d *decoder) xdp(x *XDP) field {
	iface := func(dst *string) field { return text(d, dst, "an interface name", parseInterface) }
	list := listOf(d, &x.Interfaces, iface)
	return func(v *yaml.Node, path string) {
		d.object(v, path, map[string]field{
			"interfaces": func(v *yaml.Node, path string) {
				list(v, path)
				seen := make(map[string]bool)
				for i, name := range x.Interfaces {
					if seen[name] {
						d.errorf(indexPath(path, i), "interface %s is listed twice", name)
					}
					seen[name] = true
				}
			},
		})
	}
}
