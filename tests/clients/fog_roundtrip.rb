# fog-aws (Ruby) against basalt: an IO body makes fog stream it with
# STREAMING-AWS4-HMAC-SHA256-PAYLOAD chunk signatures inside Transfer-Encoding: chunked,
# the same signing minio-go and warp use over plain HTTP. Run by test_other_clients.py.
require 'fog/aws'
s3 = Fog::Storage.new(provider: 'AWS', aws_access_key_id: ENV['KEY'], aws_secret_access_key: ENV['SECRET'],
  region: 'us-east-1', endpoint: ENV['ENDPOINT'], path_style: true, aws_signature_version: 4,
  enable_signature_v4_streaming: true)
dir = s3.directories.create(key: 'fogbucket')
data = Random.new(42).bytes(3 * 1024 * 1024 + 17)
# A body that is an IO makes fog stream it with chunk signatures and Transfer-Encoding: chunked.
f = dir.files.create(key: 'streamed.bin', body: StringIO.new(data))
back = dir.files.get('streamed.bin').body
raise "mismatch #{back.bytesize} vs #{data.bytesize}" unless back == data
small = dir.files.create(key: 'small.txt', body: 'hello fog')
raise 'small mismatch' unless dir.files.get('small.txt').body == 'hello fog'
puts "FOG_OK #{dir.files.map(&:key).sort.inspect}"
