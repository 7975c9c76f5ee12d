package tracker

import (
	"net/netip"
	"slices"
	"testing"
)

// TestInGroupMatchesGroups: InGroup is the allocation-free twin of Groups.
func TestInGroupMatchesGroups(t *testing.T) {
	addr := netip.MustParseAddrPort("192.0.2.1:4000")
	closed := netip.MustParseAddrPort("192.0.2.1:0")
	groups := []Group{GroupPool, GroupInfra, ISPGroup("AS64501"), ISPGroup("Alpha"), ISPGroup(""), RegionGroup("eu"), RegionGroup(""), "other", "isp:", "region:"}
	for _, p := range []Peer{
		{Addr: addr, Role: RolePeer, ISP: "Alpha", ASN: 64501, Region: "eu"},
		{Addr: addr, Role: RoleSeed, ISP: "Alpha", Region: "eu"},
		{Addr: addr, Role: RolePeer},
		{Addr: closed, Role: RolePeer, ISP: "Alpha", Region: "eu"},
		{Addr: addr, Role: RoleEdge, ISP: "Alpha", Region: "eu"},
		{Addr: addr, Role: RoleOrigin},
	} {
		for _, g := range groups {
			if got, want := p.InGroup(g), slices.Contains(p.Groups(), g); got != want {
				t.Errorf("%+v: InGroup(%q) = %v, want %v", p, g, got, want)
			}
		}
	}
}

func TestQuotas(t *testing.T) {
	for _, tc := range []struct {
		isp, region       float64
		want              int
		wISP, wReg, wRand int
	}{
		{0.6, 0.2, 30, 18, 6, 6},
		{0.6, 0.2, 1, 0, 0, 1},
		{0.6, 0.2, 2, 1, 0, 1},
		{0.6, 0.2, 5, 3, 1, 1},
		{0.6, 0.2, 7, 4, 1, 2},
		{0.6, 0.2, 200, 120, 40, 40},
		{0, 0, 30, 0, 0, 30},
		{0.8, 0, 30, 24, 0, 6},
		{0.5, 0.25, 10, 5, 2, 3},
	} {
		tr := &Tracker{ispShare: tc.isp, regionShare: tc.region}
		i, r, x := tr.quotas(tc.want)
		if i != tc.wISP || r != tc.wReg || x != tc.wRand {
			t.Errorf("quotas(%d) with shares %.2f/%.2f = %d %d %d, want %d %d %d", tc.want, tc.isp, tc.region, i, r, x, tc.wISP, tc.wReg, tc.wRand)
		}
		if x*5 < tc.want {
			t.Errorf("quotas(%d): random %d is under 20 %%", tc.want, x)
		}
	}
}
