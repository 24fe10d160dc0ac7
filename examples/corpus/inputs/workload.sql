-- A SQL workload for proctor's meter corpus: SQLite (from Debian's source
-- package) is the program measured; this script is its input. Generated
-- rows, indexes, joins, grouping, sorting, window functions, string work.
CREATE TABLE customer(id INTEGER PRIMARY KEY, name TEXT, region INTEGER);
CREATE TABLE item(id INTEGER PRIMARY KEY, title TEXT, price INTEGER);
CREATE TABLE orders(id INTEGER PRIMARY KEY, customer INTEGER, item INTEGER, qty INTEGER, day INTEGER);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)
INSERT INTO customer SELECT i, 'customer-' || hex(i * 2654435761 % 4294967296), i % 17 FROM n;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 500)
INSERT INTO item SELECT i, printf('item %04d %s', i, substr('abcdefghijklmnopqrstuvwxyz', i % 20 + 1, 6)), (i * 7919) % 1000 + 1 FROM n;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 30000)
INSERT INTO orders SELECT i, (i * 48271) % 2000 + 1, (i * 16807) % 500 + 1, i % 9 + 1, (i * 31) % 365 FROM n;
CREATE INDEX orders_customer ON orders(customer);
CREATE INDEX orders_item ON orders(item, day);
SELECT count(*), sum(qty), min(day), max(day) FROM orders;
SELECT c.region, count(*), sum(o.qty * i.price) AS revenue
  FROM orders o JOIN customer c ON c.id = o.customer JOIN item i ON i.id = o.item
  GROUP BY c.region ORDER BY revenue DESC LIMIT 5;
SELECT i.title, sum(o.qty) AS sold FROM item i JOIN orders o ON o.item = i.id
  WHERE o.day BETWEEN 100 AND 200 GROUP BY i.id ORDER BY sold DESC, i.title LIMIT 5;
SELECT name, total, rank FROM (
  SELECT c.name, sum(o.qty) AS total, rank() OVER (PARTITION BY c.region ORDER BY sum(o.qty) DESC) AS rank
  FROM customer c JOIN orders o ON o.customer = c.id GROUP BY c.id)
  WHERE rank = 1 ORDER BY total DESC, name LIMIT 5;
SELECT day, sum(qty) OVER (ORDER BY day ROWS BETWEEN 6 PRECEDING AND CURRENT ROW) AS week
  FROM (SELECT day, sum(qty) AS qty FROM orders GROUP BY day) ORDER BY week DESC, day LIMIT 3;
UPDATE item SET price = price + 1 WHERE id IN (SELECT item FROM orders GROUP BY item HAVING count(*) > 60);
DELETE FROM orders WHERE qty = 1 AND day % 2 = 0;
SELECT count(*), sum(qty) FROM orders;
SELECT upper(substr(name, 10, 4)) AS k, count(*) FROM customer GROUP BY k ORDER BY count(*) DESC, k LIMIT 3;
SELECT group_concat(title, ';') FROM (SELECT title FROM item WHERE title LIKE '%fgh%' ORDER BY price DESC LIMIT 4);
