// The README's 10-line Express example (with relative imports): `node --import tsx examples/http-express.ts`,
// then `npx pagegift upgrade /tmp/app.sock -- node --import tsx examples/http-express.ts`.
import http from 'node:http'
import express from 'express'
import { liveHttp } from '../src/http/index.ts'
import { attachMap } from '../src/map/index.ts'

const app = express()
const gen = await liveHttp(http.createServer(app), { socket: process.env.SOCK ?? '/tmp/app.sock', listen: { port: Number(process.env.PORT ?? 8080) } })
const cache = attachMap(gen, 'cache', { maxBytes: 1 << 30 }) // giftable: the successor maps the same pages
app.get('/item/:id', (req, res) => { res.send(cache.get(req.params.id) ?? 'miss') })
app.put('/item/:id', express.text(), (req, res) => { cache.set(req.params.id, String(req.body)); res.send(`generation ${gen.generation}`) })
