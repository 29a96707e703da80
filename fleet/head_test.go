package fleet

import (
	"strings"
	"testing"
)

func TestCreateServer(t *testing.T) {
	got, err := CreateServer("s1", "rd:p'w\\d@tcp(10.0.0.5:3307)/pofr?parseTime=true")
	if err != nil {
		t.Fatal(err)
	}
	want := "CREATE OR REPLACE SERVER `s1` FOREIGN DATA WRAPPER mysql OPTIONS (USER 'rd', PASSWORD 'p\\'w\\\\d', DATABASE 'pofr', HOST '10.0.0.5', PORT 3307)"
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	if got, _ := CreateServer("s2", "root@unix(/run/mysqld/mysqld.sock)/pofr"); !strings.Contains(got, "SOCKET '/run/mysqld/mysqld.sock'") {
		t.Errorf("socket: %s", got)
	}
	for _, dsn := range []string{"root@tcp(h:0)/pofr", "root@tcp(h:1)/", "root@pipe(x)/pofr"} {
		if _, err := CreateServer("s1", dsn); err == nil {
			t.Errorf("%s accepted", dsn)
		}
	}
}

func TestSpiderTable(t *testing.T) {
	create := "CREATE TABLE `segments` (\n  `host_id` varchar(64) NOT NULL,\n  `seq` bigint(20) unsigned NOT NULL,\n  `digest` binary(32) NOT NULL,\n" +
		"  PRIMARY KEY (`seq`),\n  UNIQUE KEY `digest` (`digest`),\n  UNIQUE KEY `hs` (`host_id`,`seq`),\n  KEY `ts` (`seq`)\n" +
		") ENGINE=InnoDB AUTO_INCREMENT=7 DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci PAGE_COMPRESSED=1 COMMENT='ledger'\n PARTITION BY RANGE (`seq`)\n(PARTITION `p0` VALUES LESS THAN MAXVALUE ENGINE = InnoDB)"
	got, err := SpiderTable(create, "segments", []Part{{"s2", []string{"h9", "h'1"}}, {"s1", []string{"h2"}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"PRIMARY KEY (`seq`,`host_id`)", "UNIQUE KEY `digest` (`digest`,`host_id`)", "UNIQUE KEY `hs` (`host_id`,`seq`),", "KEY `ts` (`seq`)\n",
		") ENGINE=SPIDER DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci\nPARTITION BY LIST COLUMNS(`host_id`)",
		"PARTITION `s2` VALUES IN ('h\\'1','h9') COMMENT='srv \"s2\", tbl \"segments\"'",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in\n%s", want, got)
		}
	}
	for _, bad := range []string{"InnoDB", "AUTO_INCREMENT", "PAGE_COMPRESSED", "RANGE", "ledger"} {
		if strings.Contains(got, bad) {
			t.Errorf("kept %q:\n%s", bad, got)
		}
	}
	noHost := "CREATE TABLE `schema_version` (\n  `version` int NOT NULL,\n  PRIMARY KEY (`version`)\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
	got, _ = SpiderTable(noHost, "schema_version", []Part{{"s1", []string{"h"}}, {"s2", []string{"g"}}})
	if strings.Contains(got, "PARTITION") || !strings.HasSuffix(got, "COMMENT='srv \"s1\", tbl \"schema_version\"'") {
		t.Errorf("table without host_id:\n%s", got)
	}
	if _, err := SpiderTable(create, "segments", nil); err == nil {
		t.Error("no parts accepted")
	}
}
