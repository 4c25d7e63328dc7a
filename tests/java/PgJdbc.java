// pgjdbc (the PostgreSQL JDBC driver, Debian's libpostgresql-jdbc-java) against Strata's
// PostgreSQL listener: what DBeaver, Metabase and other JDBC tools send on connect and in
// their schema browsers (DatabaseMetaData), server-side prepared statements (pgjdbc switches
// to them after `prepareThreshold` executions), a cursor fetch in pages (`setFetchSize`, the
// extended protocol's row limit), the types, and a refused statement with the session going on.
//
// Run with the JDK's source launcher:
//   java -cp /usr/share/java/postgresql.jar tests/java/PgJdbc.java HOST PORT EXPECTED_SPANS
// Prints one JSON object of what it saw; exits non-zero on the first wrong answer.

import java.sql.*;
import java.util.*;

public class PgJdbc {
    static final Map<String, Object> seen = new LinkedHashMap<>();

    static void check(boolean ok, String what) {
        if (!ok) {
            System.err.println("wrong: " + what);
            System.exit(1);
        }
    }

    static String json(Object v) {
        if (v instanceof String s) {
            return "\"" + s.replace("\\", "\\\\").replace("\"", "\\\"") + "\"";
        }
        if (v instanceof List<?> l) {
            StringJoiner j = new StringJoiner(", ", "[", "]");
            for (Object o : l) j.add(json(o));
            return j.toString();
        }
        return String.valueOf(v);
    }

    public static void main(String[] args) throws Exception {
        String url = "jdbc:postgresql://" + args[0] + ":" + args[1] + "/strata?connectTimeout=10";
        long expected = Long.parseLong(args[2]);
        Properties props = new Properties();
        props.setProperty("user", "default");
        props.setProperty("ApplicationName", "pgjdbc-test");
        try (Connection conn = DriverManager.getConnection(url, props)) {
            DatabaseMetaData md = conn.getMetaData();
            seen.put("product", md.getDatabaseProductName());
            check(md.getDatabaseProductName().equals("PostgreSQL"), "product name");
            check(md.getDatabaseMajorVersion() >= 16, "major version " + md.getDatabaseMajorVersion());

            // What tools ask right after connecting.
            try (Statement st = conn.createStatement()) {
                ResultSet rs = st.executeQuery("SELECT current_schema(), session_user");
                check(rs.next(), "current_schema row");
                seen.put("current_schema", rs.getString(1));
                rs = st.executeQuery("SHOW search_path");
                check(rs.next(), "SHOW search_path row");
                rs = st.executeQuery("SELECT version()");
                check(rs.next() && rs.getString(1).startsWith("PostgreSQL"), "version()");
            }
            seen.put("isolation", conn.getTransactionIsolation());
            conn.setReadOnly(true);

            // The schema browser: schemas, tables, columns.
            List<String> schemas = new ArrayList<>();
            try (ResultSet rs = md.getSchemas()) {
                while (rs.next()) schemas.add(rs.getString("TABLE_SCHEM"));
            }
            check(schemas.contains("public"), "schemas " + schemas);
            List<String> tables = new ArrayList<>();
            try (ResultSet rs = md.getTables(null, null, "%", new String[] {"TABLE", "VIEW"})) {
                while (rs.next()) tables.add(rs.getString("TABLE_NAME"));
            }
            Collections.sort(tables);
            seen.put("tables", tables);
            for (String t : new String[] {"spans", "logs", "metrics"}) {
                check(tables.contains(t), "getTables lists " + t + ": " + tables);
            }
            Map<String, String> columns = new LinkedHashMap<>();
            try (ResultSet rs = md.getColumns(null, "public", "spans", "%")) {
                while (rs.next()) columns.put(rs.getString("COLUMN_NAME"), rs.getString("TYPE_NAME"));
            }
            seen.put("span_columns", columns.size());
            check("timestamptz".equals(columns.get("start_time")), "start_time type " + columns.get("start_time"));
            check(columns.containsKey("trace_id") && columns.containsKey("service_name"), "columns " + columns);

            // Server-side prepared statements: the sixth execution is a named statement.
            try (PreparedStatement ps = conn.prepareStatement(
                    "SELECT count(*) FROM spans WHERE service_name = ? AND duration_nanos >= ?")) {
                long n = -1;
                for (int i = 0; i < 6; i++) {
                    ps.setString(1, "checkout");
                    ps.setLong(2, 0);
                    try (ResultSet rs = ps.executeQuery()) {
                        check(rs.next(), "count row");
                        n = rs.getLong(1);
                    }
                }
                check(n == expected, "prepared count " + n + " != " + expected);
                seen.put("prepared", n);
            }

            // Types: timestamps with a time zone, integers, text, the attribute map as JSON.
            try (Statement st = conn.createStatement();
                    ResultSet rs = st.executeQuery(
                            "SELECT start_time, duration_nanos, name, attributes FROM spans ORDER BY span_id LIMIT 1")) {
                check(rs.next(), "a span row");
                Timestamp t = rs.getTimestamp(1);
                check(t != null && t.getTime() > 1_600_000_000_000L, "start_time " + t);
                check(rs.getLong(2) >= 0, "duration");
                check(rs.getString(3) != null, "name");
                String attrs = rs.getString(4);
                check(attrs != null && attrs.startsWith("{"), "attributes as JSON: " + attrs);
                seen.put("attributes_type", rs.getMetaData().getColumnTypeName(4));
            }

            // A cursor fetch in pages of 30 rows (a transaction, then Execute with a row limit).
            conn.setAutoCommit(false);
            try (Statement st = conn.createStatement()) {
                st.setFetchSize(30);
                long rows = 0;
                try (ResultSet rs = st.executeQuery("SELECT span_id FROM spans")) {
                    while (rs.next()) rows++;
                }
                check(rows == expected, "paged rows " + rows + " != " + expected);
                seen.put("paged_rows", rows);
            }
            conn.commit();
            conn.setAutoCommit(true);

            // A refused statement: an SQLSTATE, and the session goes on.
            try (Statement st = conn.createStatement()) {
                try {
                    st.execute("CREATE TABLE x (a int)");
                    check(false, "CREATE TABLE was refused");
                } catch (SQLException e) {
                    seen.put("create_table", e.getSQLState());
                }
                ResultSet rs = st.executeQuery("SELECT count(*) FROM logs");
                check(rs.next() && rs.getLong(1) > 0, "the session went on");
            }
        }
        StringJoiner out = new StringJoiner(", ", "{", "}");
        for (Map.Entry<String, Object> e : seen.entrySet()) {
            out.add(json(e.getKey()) + ": " + json(e.getValue()));
        }
        System.out.println(out);
    }
}
