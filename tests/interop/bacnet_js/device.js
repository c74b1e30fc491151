// A BACnet/IP device on @bacnet-js/client (a stack the project did not write), behaving like real controllers
// do, for tests/interop/test_bacnet_interop.py.
//
// node device.js '<json config>'   config keys:
//   port, instance, name            UDP port on 127.0.0.1, device instance, object-name
//   maxApdu [1476]                   max-APDU-length-accepted: a request or answer longer than this is aborted
//                                   (this device never segments: segmentation-supported = no-segmentation)
//   rpm [true]                       true; "reject" (Reject unrecognized-service, as old controllers do);
//                                   "error" (Error services/service-request-denied)
//   rpmErrors ["inline"]             "whole": one failing property fails the whole RPM with its Error
//   objects                          [{type: "analog-input", instance: 1, name, value, units, listed: true,
//                                     errors: {"present-value": ["property", "read-access-denied"]}}]
//                                   listed: false -> the object answers reads but is missing from object-list
// Control lines on stdin (JSON), each answered "ok <op>" on stdout:
//   {"op": "drop", "object": "analog-input,2"}   the object is gone (reads answer unknown-object)
//   {"op": "add", "object": {...}}                a new object, listed
//   {"op": "set", "object": "analog-input,1", "value": 3.5}
// Every request is logged on stdout: "whois", "rp <object> <property>", "rpm <n properties> <answer>".

'use strict'
const readline = require('node:readline')
const bacnet = require('@bacnet-js/client')
const npdu = require('@bacnet-js/client/dist/lib/npdu')
const apdu = require('@bacnet-js/client/dist/lib/apdu')
const services = require('@bacnet-js/client/dist/lib/services').default

const Client = bacnet.default
const { ObjectType, PropertyIdentifier: P, ApplicationTag: T, ErrorClass, ErrorCode, AbortReason, RejectReason,
  PduType, NpduControlPriority, ConfirmedServiceChoice, UnconfirmedServiceChoice } = bacnet
const ARRAY_ALL = bacnet.ASN1_ARRAY_ALL ?? 0xFFFFFFFF
const NO_SEGMENTATION = 3

const cfg = JSON.parse(process.argv[2])
const maxApdu = cfg.maxApdu ?? 1476
const rpmMode = cfg.rpm ?? true
const enumName = (s) => s.toUpperCase().replace(/-/g, '_')
const typeOf = (name) => {
  const t = ObjectType[enumName(name)]
  if (t === undefined) throw new Error(`unknown object type ${name}`)
  return t
}
const key = (type, instance) => `${type},${instance}`
const objects = new Map() // "type,instance" (numbers) -> object

function addObject (o) {
  objects.set(key(typeOf(o.type), o.instance), { listed: true, errors: {}, ...o, typeId: typeOf(o.type) })
}
for (const o of cfg.objects ?? []) addObject(o)
const deviceId = { type: ObjectType.DEVICE, instance: cfg.instance }

function error (cls, code) {
  return { error: [ErrorClass[enumName(cls)], ErrorCode[enumName(code)]] }
}

function presentValue (o) {
  if (o.type.startsWith('analog') || o.type === 'accumulator') return [{ type: T.REAL, value: o.value }]
  if (o.type.startsWith('binary')) return [{ type: T.ENUMERATED, value: o.value ? 1 : 0 }]
  return [{ type: T.UNSIGNED_INTEGER, value: o.value }]
}

function objectList () {
  const list = [{ type: T.OBJECTIDENTIFIER, value: deviceId }]
  for (const o of objects.values()) {
    if (o.listed) list.push({ type: T.OBJECTIDENTIFIER, value: { type: o.typeId, instance: o.instance } })
  }
  return list
}

function deviceProperty (prop, index) {
  switch (prop) {
    case P.OBJECT_IDENTIFIER: return [{ type: T.OBJECTIDENTIFIER, value: deviceId }]
    case P.OBJECT_NAME: return [{ type: T.CHARACTER_STRING, value: cfg.name ?? `js-device-${cfg.instance}` }]
    case P.OBJECT_TYPE: return [{ type: T.ENUMERATED, value: ObjectType.DEVICE }]
    case P.VENDOR_IDENTIFIER: return [{ type: T.UNSIGNED_INTEGER, value: cfg.vendor ?? 999 }]
    case P.VENDOR_NAME: return [{ type: T.CHARACTER_STRING, value: 'bacnet-js test device' }]
    case P.MAX_APDU_LENGTH_ACCEPTED: return [{ type: T.UNSIGNED_INTEGER, value: maxApdu }]
    case P.SEGMENTATION_SUPPORTED: return [{ type: T.ENUMERATED, value: NO_SEGMENTATION }]
    case P.SYSTEM_STATUS: return [{ type: T.ENUMERATED, value: 0 }]
    case P.PROTOCOL_VERSION: return [{ type: T.UNSIGNED_INTEGER, value: 1 }]
    case P.OBJECT_LIST: {
      const list = objectList()
      if (index === undefined || index === ARRAY_ALL) return list
      if (index === 0) return [{ type: T.UNSIGNED_INTEGER, value: list.length }]
      return index <= list.length ? [list[index - 1]] : error('property', 'invalid-array-index')
    }
    default: return error('property', 'unknown-property')
  }
}

// The value list of one property, or {error: [class, code]}.
function read (objectId, prop, index) {
  if (objectId.type === ObjectType.DEVICE && objectId.instance === cfg.instance) return deviceProperty(prop, index)
  const o = objects.get(key(objectId.type, objectId.instance))
  if (!o) return error('object', 'unknown-object')
  const name = Object.keys(P).find((k) => P[k] === prop)
  const err = name && o.errors[name.toLowerCase().replace(/_/g, '-')]
  if (err) return error(err[0], err[1])
  switch (prop) {
    case P.OBJECT_IDENTIFIER: return [{ type: T.OBJECTIDENTIFIER, value: { type: o.typeId, instance: o.instance } }]
    case P.OBJECT_NAME: return [{ type: T.CHARACTER_STRING, value: o.name ?? `${o.type}-${o.instance}` }]
    case P.OBJECT_TYPE: return [{ type: T.ENUMERATED, value: o.typeId }]
    case P.PRESENT_VALUE: return presentValue(o)
    case P.UNITS:
      if (o.units === undefined) return error('property', 'unknown-property')
      return [{ type: T.ENUMERATED, value: o.units }]
    case P.OUT_OF_SERVICE: return [{ type: T.BOOLEAN, value: false }]
    default: return error('property', 'unknown-property')
  }
}

const client = new Client({ port: cfg.port, interface: '127.0.0.1', broadcastAddress: '127.255.255.255' })

function send (receiver, encode) {
  const buffer = { buffer: Buffer.alloc(1482), offset: 4 }
  npdu.encode(buffer, NpduControlPriority.NORMAL_MESSAGE, receiver)
  encode(buffer)
  client.sendBvlc(receiver, buffer)
}

function abort (receiver, invokeId, reason) {
  send(receiver, (b) => apdu.encodeAbort(b, PduType.ABORT | 1, invokeId, reason)) // 1: sent by the server
}

function reject (receiver, invokeId, reason) {
  send(receiver, (b) => { b.buffer[b.offset++] = PduType.REJECT; b.buffer[b.offset++] = invokeId; b.buffer[b.offset++] = reason })
}

// Encoded length of something, to judge it against maxApdu before answering.
function sizeOf (encode) {
  const b = { buffer: Buffer.alloc(16384), offset: 0 }
  encode(b)
  return b.offset
}

function log (line) { process.stdout.write(line + '\n') }

client.on('whoIs', (msg) => {
  log('whois')
  const low = msg.payload?.lowLimit; const high = msg.payload?.highLimit
  if (low !== undefined && (cfg.instance < low || cfg.instance > high)) return
  send(msg.header.sender, (b) => {
    apdu.encodeUnconfirmedServiceRequest(b, PduType.UNCONFIRMED_REQUEST, UnconfirmedServiceChoice.I_AM)
    services.iAm.encode(b, cfg.instance, maxApdu, NO_SEGMENTATION, cfg.vendor ?? 999)
  })
})

client.on('readProperty', (msg) => {
  const { objectId, property } = msg.payload
  const sender = msg.header.sender
  const values = read(objectId, property.id, property.index)
  log(`rp ${objectId.type},${objectId.instance} ${property.id}${property.index !== ARRAY_ALL ? `[${property.index}]` : ''}`)
  if (values.error) {
    client.errorResponse(sender, ConfirmedServiceChoice.READ_PROPERTY, msg.invokeId, ...values.error)
    return
  }
  const size = 3 + sizeOf((b) => services.readProperty.encodeAcknowledge(b, objectId, property.id, property.index, values))
  if (size > maxApdu) return abort(sender, msg.invokeId, AbortReason.SEGMENTATION_NOT_SUPPORTED)
  client.readPropertyResponse(sender, msg.invokeId, objectId, property, values)
})

client.on('readPropertyMultiple', (msg) => {
  const sender = msg.header.sender
  const specs = msg.payload.properties
  const n = specs.reduce((acc, s) => acc + s.properties.length, 0)
  if (rpmMode === 'reject') {
    log(`rpm ${n} reject`)
    return reject(sender, msg.invokeId, RejectReason.UNRECOGNIZED_SERVICE)
  }
  if (rpmMode === 'error') {
    log(`rpm ${n} error`)
    return client.errorResponse(sender, ConfirmedServiceChoice.READ_PROPERTY_MULTIPLE, msg.invokeId,
      ErrorClass.SERVICES, ErrorCode.SERVICE_REQUEST_DENIED)
  }
  const request = 4 + sizeOf((b) => services.readPropertyMultiple.encode(b, specs))
  if (request > maxApdu) {
    log(`rpm ${n} abort-buffer-overflow`)
    return abort(sender, msg.invokeId, AbortReason.BUFFER_OVERFLOW)
  }
  const answer = specs.map((s) => ({
    objectId: s.objectId,
    values: s.properties.map((p) => {
      const v = read(s.objectId, p.id, p.index)
      const value = v.error ? [{ type: 0, value: { type: 'BacnetError', errorClass: v.error[0], errorCode: v.error[1] } }] : v
      return { property: { id: p.id, index: p.index ?? ARRAY_ALL }, value }
    })
  }))
  const failed = answer.flatMap((a) => a.values).find((v) => v.value[0]?.value?.type === 'BacnetError')
  if (failed && cfg.rpmErrors === 'whole') { // some controllers fail the whole RPM for one bad property
    log(`rpm ${n} error-whole`)
    const e = failed.value[0].value
    return client.errorResponse(sender, ConfirmedServiceChoice.READ_PROPERTY_MULTIPLE, msg.invokeId, e.errorClass, e.errorCode)
  }
  const size = 3 + sizeOf((b) => services.readPropertyMultiple.encodeAcknowledge(b, answer))
  if (size > maxApdu) {
    log(`rpm ${n} abort-segmentation-not-supported`)
    return abort(sender, msg.invokeId, AbortReason.SEGMENTATION_NOT_SUPPORTED)
  }
  log(`rpm ${n} ok`)
  client.readPropertyMultipleResponse(sender, msg.invokeId, answer)
})

client.on('error', (err) => log(`error ${err.message}`))

readline.createInterface({ input: process.stdin }).on('line', (line) => {
  const cmd = JSON.parse(line)
  if (cmd.op === 'drop') {
    const [t, i] = cmd.object.split(',')
    objects.delete(key(typeOf(t), Number(i)))
  } else if (cmd.op === 'add') {
    addObject(cmd.object)
  } else if (cmd.op === 'set') {
    const [t, i] = cmd.object.split(',')
    objects.get(key(typeOf(t), Number(i))).value = cmd.value
  }
  log(`ok ${cmd.op}`)
}).on('close', () => { client.close(); process.exit(0) })

client.on('listening', () => log('ready'))
