package console

import (
	"github.com/sios-project/sios/replication"
)

// The replicas page: the copies of this node's log its replicas keep, and the copies
// this node keeps of other nodes' logs — how far behind each is, the size of the last
// checkpoint cosigned, and any fork (a source that showed two histories). It is the
// state of the node's own log: open to those who may read the node's own records.

func replicasPage() Page {
	return Page{Path: "/console/replicas", Title: "Replicas", Nav: true, Template: "replicas.html",
		Visible: (*View).mayReadNodeRecords, Data: replicasData}
}

type replicasView struct {
	Starting bool
	Replicas []replication.ReplicaStatus // copies of this node's log
	Sources  []replication.ReplicaStatus // copies this node keeps
	Forks    int
}

func replicasData(v *View) (any, error) {
	a := v.c.cfg.Admin()
	if a == nil {
		return &replicasView{Starting: true}, nil
	}
	out := &replicasView{}
	for _, s := range a.ReplicaStatuses() {
		if s.State == "forked" { // replication's states and roles are strings of its status
			out.Forks++
		}
		if s.Role == "replica" {
			out.Replicas = append(out.Replicas, s)
		} else {
			out.Sources = append(out.Sources, s)
		}
	}
	return out, nil
}
